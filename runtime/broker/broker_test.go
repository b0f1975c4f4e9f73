package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/broker"
)

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"orders", "orders.created", "a", "v1.orders_created-eu", strings.Repeat("x", 128)} {
		if err := broker.ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".orders", "orders.", "orders..created", "orders created", "orders/created", "orders.*", "ördérs", "-x", strings.Repeat("x", 129)} {
		if err := broker.ValidateTopic(bad); err == nil {
			t.Errorf("ValidateTopic(%q) accepted it", bad)
		}
	}
}

func TestCodecOf(t *testing.T) {
	for ct, want := range map[string]string{
		"":                       "proto",
		"application/proto":      "proto",
		"application/x-protobuf": "proto",
		"application/json":       "json",
		"Application/JSON":       "json",
	} {
		c, err := broker.CodecOf(&broker.Message{Header: map[string]string{broker.HeaderContentType: ct}})
		if err != nil || c.Name() != want {
			t.Errorf("CodecOf(%q) = %v, %v; want %s", ct, c, err, want)
		}
	}
	if _, err := broker.CodecOf(&broker.Message{Header: map[string]string{broker.HeaderContentType: "text/plain"}}); err == nil {
		t.Error("CodecOf(text/plain) found a codec")
	}
}

func TestOptionsDefaults(t *testing.T) {
	p := broker.NewPublishOptions(broker.WithAttempts(0), broker.WithBackoff(time.Second, time.Millisecond))
	if p.Attempts != 1 || p.MaxBackoff != time.Second || p.Timeout != broker.DefaultTimeout {
		t.Errorf("publish options %+v", p)
	}
	s := broker.NewSubscribeOptions(broker.WithConcurrency(8), broker.WithMaxInFlight(2))
	if s.Concurrency != 8 || s.MaxInFlight != 8 {
		t.Errorf("subscribe options %+v: MaxInFlight must cover Concurrency", s)
	}
}
