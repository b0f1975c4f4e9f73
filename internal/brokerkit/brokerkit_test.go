package brokerkit

import (
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"orders", "orders.created", "a", "v1.orders_created-eu", strings.Repeat("x", 128)} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".orders", "orders.", "orders..created", "orders created", "orders/created", "orders.*", "ördérs", "-x", strings.Repeat("x", 129)} {
		if err := ValidateTopic(bad); err == nil {
			t.Errorf("ValidateTopic(%q) accepted it", bad)
		}
	}
}
