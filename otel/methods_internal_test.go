package otelmicro

import (
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// TestMethodsBound: a program making a *spec.Method per call does not grow
// the cache past maxMethods, and methods beyond it still get their state.
func TestMethodsBound(t *testing.T) {
	ms := methods{kind: trace.SpanKindClient}
	for i := range maxMethods + 100 {
		m := &spec.Method{Service: "s.v1.S", Name: "M", Procedure: "/s.v1.S/M"}
		if st := ms.get(m); st.name != "s.v1.S/M" || len(st.rec[0]) != 1 {
			t.Fatalf("method %d: state %+v", i, st)
		}
	}
	n := 0
	ms.m.Range(func(any, any) bool { n++; return true })
	if n != maxMethods || ms.n.Load() != maxMethods {
		t.Fatalf("cache holds %d methods (counted %d), want the bound %d", n, ms.n.Load(), maxMethods)
	}
}
