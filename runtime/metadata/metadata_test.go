package metadata_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

func TestPairsAndNew(t *testing.T) {
	md := metadata.Pairs("X-Key", "a", "x-key", "b", "Other", "c")
	want := metadata.MD{"x-key": {"a", "b"}, "other": {"c"}}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("Pairs = %v, want %v", md, want)
	}
	if md.Len() != 2 || md.Value("X-KEY") != "a" || len(md.Get("OTHER")) != 1 || md.Value("absent") != "" {
		t.Fatalf("accessors on %v", md)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Pairs with an odd count did not panic")
			}
		}()
		metadata.Pairs("lonely")
	}()
	if n := metadata.New(map[string]string{"Upper": "v"}); n.Value("upper") != "v" || len(n["upper"]) != 1 {
		t.Fatalf("New = %v", n)
	}
}

func TestMDMutators(t *testing.T) {
	md := metadata.MD{}
	md.Set("K", "1")
	md.Append("k", "2", "3")
	md.Append("k") // no values: no change
	md.Set("k")    // no values: no change
	if got := md.Get("k"); !reflect.DeepEqual(got, []string{"1", "2", "3"}) {
		t.Fatalf("after Set/Append: %v", got)
	}
	c := md.Copy()
	c["k"][0] = "changed"
	c.Append("k", "4")
	if md.Value("k") != "1" || len(md["k"]) != 3 {
		t.Fatalf("Copy is shallow: original now %v", md)
	}
	md.Delete("K")
	if md.Len() != 0 {
		t.Fatalf("Delete left %v", md)
	}
	j := metadata.Join(metadata.Pairs("a", "1"), metadata.Pairs("a", "2", "b", "3"))
	if !reflect.DeepEqual(j, metadata.MD{"a": {"1", "2"}, "b": {"3"}}) {
		t.Fatalf("Join = %v", j)
	}
}

func TestOutgoingContext(t *testing.T) {
	if _, ok := metadata.FromOutgoingContext(context.Background()); ok {
		t.Fatal("empty context has outgoing metadata")
	}
	base := metadata.Pairs("a", "1")
	ctx := metadata.NewOutgoingContext(context.Background(), base)
	ctx1 := metadata.AppendToOutgoingContext(ctx, "B", "2", "a", "3")
	ctx2 := metadata.AppendToOutgoingContext(ctx1, "c", "4")
	// Siblings derived from the same parent do not see each other's pairs.
	sibling := metadata.AppendToOutgoingContext(ctx1, "d", "5")

	got, _ := metadata.FromOutgoingContext(ctx2)
	want := metadata.MD{"a": {"1", "3"}, "b": {"2"}, "c": {"4"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ctx2 = %v, want %v", got, want)
	}
	got, _ = metadata.FromOutgoingContext(sibling)
	if _, ok := got["c"]; ok || got.Value("d") != "5" {
		t.Fatalf("sibling = %v", got)
	}
	got, _ = metadata.FromOutgoingContext(ctx1)
	if _, ok := got["c"]; ok {
		t.Fatalf("parent sees child's pairs: %v", got)
	}
	// The base MD is not modified by appends or by changing a returned copy.
	got["a"][0] = "mutated"
	got.Append("a", "x")
	if !reflect.DeepEqual(base, metadata.MD{"a": {"1"}}) {
		t.Fatalf("base MD changed: %v", base)
	}
	again, _ := metadata.FromOutgoingContext(ctx2)
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("FromOutgoingContext is not a copy: %v", again)
	}

	// RangeOutgoing sees every pair, base and appended.
	seen := metadata.MD{}
	mdctx.RangeOutgoing(ctx2, func(k, v string) { seen[k] = append(seen[k], v) })
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("RangeOutgoing = %v", seen)
	}
	mdctx.RangeOutgoing(context.Background(), func(k, v string) { t.Fatal("called on empty context") })

	// NewOutgoingContext replaces what was there, appended pairs included.
	ctx3 := metadata.NewOutgoingContext(ctx2, metadata.Pairs("z", "9"))
	got, _ = metadata.FromOutgoingContext(ctx3)
	if !reflect.DeepEqual(got, metadata.MD{"z": {"9"}}) {
		t.Fatalf("replaced = %v", got)
	}

	// Appending without prior outgoing metadata works too.
	ctx4 := metadata.AppendToOutgoingContext(context.Background(), "K", "v")
	got, ok := metadata.FromOutgoingContext(ctx4)
	if !ok || !reflect.DeepEqual(got, metadata.MD{"k": {"v"}}) {
		t.Fatalf("append to empty = %v %v", got, ok)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("AppendToOutgoingContext with an odd count did not panic")
			}
		}()
		metadata.AppendToOutgoingContext(context.Background(), "odd")
	}()
}

type source struct {
	md    metadata.MD
	calls int
}

func (s *source) IncomingMetadata() map[string][]string { s.calls++; return s.md }

// sourceCtx answers the incoming key with a Source, as a server stream does.
type sourceCtx struct {
	context.Context
	src mdctx.Source
}

func (c sourceCtx) Value(key any) any {
	if key == (mdctx.IncomingKey{}) {
		return c.src
	}
	return c.Context.Value(key)
}

func TestIncomingContext(t *testing.T) {
	if _, ok := metadata.FromIncomingContext(context.Background()); ok {
		t.Fatal("empty context has incoming metadata")
	}
	if v := metadata.ValueFromIncomingContext(context.Background(), "k"); v != nil {
		t.Fatalf("ValueFromIncomingContext on empty = %v", v)
	}

	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("k", "v1", "k", "v2"))
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || !reflect.DeepEqual(md.Get("k"), []string{"v1", "v2"}) {
		t.Fatalf("with MD: %v %v", md, ok)
	}
	if v := metadata.ValueFromIncomingContext(ctx, "K"); !reflect.DeepEqual(v, []string{"v1", "v2"}) {
		t.Fatalf("ValueFromIncomingContext = %v", v)
	}

	src := &source{md: metadata.Pairs("from", "source")}
	sctx := sourceCtx{context.Background(), src}
	md, ok = metadata.FromIncomingContext(sctx)
	if !ok || md.Value("from") != "source" || src.calls != 1 {
		t.Fatalf("with Source: %v %v (calls %d)", md, ok, src.calls)
	}
	// A derived context still finds the Source.
	dctx, cancel := context.WithCancel(sctx)
	defer cancel()
	if v := metadata.ValueFromIncomingContext(dctx, "from"); len(v) != 1 || v[0] != "source" {
		t.Fatalf("derived: %v", v)
	}
	// Incoming and outgoing metadata are separate.
	if _, ok := metadata.FromOutgoingContext(ctx); ok {
		t.Fatal("incoming metadata leaked into outgoing")
	}
}
