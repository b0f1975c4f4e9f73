package cache

import (
	"context"
	"testing"
)

// A cache made without a registry fails Get with an error, not a panic.
func TestNilRegistryFailsGet(t *testing.T) {
	c := New(nil)
	defer c.Close()
	if _, err := c.Get(context.Background(), "greeter"); err != errNoRegistry {
		t.Fatalf("Get = %v, want %v", err, errNoRegistry)
	}
}
