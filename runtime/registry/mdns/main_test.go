package mdns_test

import (
	"testing"

	"github.com/protoc-gen-micro/micro/internal/netns"
)

// Every test here may send multicast, so all of them run in a private
// network namespace, or not at all.
func TestMain(m *testing.M) { netns.RunInNamespace(m) }
