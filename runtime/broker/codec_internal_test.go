package broker

import (
	"testing"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
)

func TestCodecOf(t *testing.T) {
	for ct, want := range map[string]string{
		"":                       "proto",
		"application/proto":      "proto",
		"application/x-protobuf": "proto",
		"application/json":       "json",
		"Application/JSON":       "json",
	} {
		c, err := codecOf(&Message{Header: map[string]string{brokerkit.HeaderContentType: ct}})
		if err != nil || c.Name() != want {
			t.Errorf("CodecOf(%q) = %v, %v; want %s", ct, c, err, want)
		}
	}
	if _, err := codecOf(&Message{Header: map[string]string{brokerkit.HeaderContentType: "text/plain"}}); err == nil {
		t.Error("CodecOf(text/plain) found a codec")
	}
}
