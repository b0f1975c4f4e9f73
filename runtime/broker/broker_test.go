package broker_test

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
)

func TestOptionsDefaults(t *testing.T) {
	p := brokerkit.NewPublishOptions(broker.WithAttempts(0), broker.WithBackoff(time.Second, time.Millisecond))
	if p.Attempts != 1 || p.MaxBackoff != time.Second || p.Timeout != 30*time.Second {
		t.Errorf("publish options %+v", p)
	}
	s := brokerkit.NewSubscribeOptions(broker.WithConcurrency(8), broker.WithMaxInFlight(2))
	if s.Concurrency != 8 || s.MaxInFlight != 8 {
		t.Errorf("subscribe options %+v: MaxInFlight must cover Concurrency", s)
	}
}
