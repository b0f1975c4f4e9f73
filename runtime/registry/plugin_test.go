package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	_ "github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	_ "github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

func TestNew(t *testing.T) {
	r, err := registry.New("memory", "")
	if err != nil || r.String() != "memory" {
		t.Fatalf(`New("memory") = %T, %v`, r, err)
	}
	r.Close()
	// Creating an mDNS registry opens nothing until it is used.
	r, err = registry.New("mdns", "")
	if err != nil || r.String() != "mdns" {
		t.Fatalf(`New("mdns") = %T, %v`, r, err)
	}
	r.Close()

	r, err = registry.New("etcd", "")
	if err == nil || !strings.Contains(err.Error(), `"etcd" is not a known registry (known: mdns, memory)`) {
		t.Fatalf(`New("etcd") = %v`, err)
	}
	// The registry New returns with its error fails with that error.
	if _, gerr := r.GetService(context.Background(), "x"); gerr != err {
		t.Fatalf(`the registry of New("etcd") answers %v, want %v`, gerr, err)
	}
}

// TestNewPassesAddress: New hands the address to the factory, and the
// implementations without a server refuse one.
func TestNewPassesAddress(t *testing.T) {
	var got string
	registry.RegisterFactory("addressed", func(addr string) (registry.Registry, error) {
		got = addr
		return nil, errors.New("no server here")
	})
	if _, err := registry.New("addressed", "10.0.0.1:2379"); got != "10.0.0.1:2379" || err == nil || !strings.Contains(err.Error(), `creating "addressed": no server here`) {
		t.Fatalf("factory got address %q; New's error %v", got, err)
	}
	for _, name := range []string{"memory", "mdns"} {
		if _, err := registry.New(name, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "takes no address") {
			t.Errorf("New(%q, address) = %v, want an error saying it takes no address", name, err)
		}
	}
}

func TestRegisterFactoryPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"duplicate": func() {
			registry.RegisterFactory("memory", func(string) (registry.Registry, error) { return nil, nil })
		},
		"no name": func() { registry.RegisterFactory("", func(string) (registry.Registry, error) { return nil, nil }) },
		"no func": func() { registry.RegisterFactory("x", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
