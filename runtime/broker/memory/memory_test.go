package memory_test

import (
	"testing"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/brokertest"
	"github.com/protoc-gen-micro/micro/runtime/broker/memory"
)

func TestBroker(t *testing.T) {
	leakcheck.Check(t)
	brokertest.Run(t, func(t *testing.T) []broker.Broker {
		bus := memory.NewBus()
		bs := make([]broker.Broker, 3)
		for i := range bs {
			b := memory.NewBroker(memory.WithBus(bus))
			if err := b.Connect(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Disconnect() })
			bs[i] = b
		}
		return bs
	})
}
