package direct_test

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/brokertest"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// TestBroker runs the shared suite over three brokers, each with its own
// server on 127.0.0.1, sharing one in-memory registry.
func TestBroker(t *testing.T) {
	leakcheck.Check(t)
	brokertest.Run(t, func(t *testing.T) []broker.Broker {
		reg := memory.NewRegistry()
		bs := make([]broker.Broker, 3)
		for i := range bs {
			b := direct.NewBroker(direct.WithRegistry(reg), direct.WithAddress("127.0.0.1:0"), direct.WithRegisterInterval(time.Second))
			if err := b.Connect(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := b.Disconnect(); err != nil {
					t.Error(err)
				}
			})
			bs[i] = b
		}
		return bs
	})
}
