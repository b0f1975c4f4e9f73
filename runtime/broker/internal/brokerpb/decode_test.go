package brokerpb

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// randomDelivery returns a batch of n messages with IDs, bodies of many
// sizes (empty ones too), attempts, timeouts and, on some messages,
// extras.
func randomDelivery(r *rand.Rand, n int) *Delivery {
	d := &Delivery{Subscription: fmt.Sprintf("sub-%d", r.IntN(1000)), Topic: "orders.créés"}
	for i := range n {
		d.Ids = append(d.Ids, fmt.Sprintf("id-%x-ü%d", r.Uint64(), i))
		var size int
		switch r.IntN(3) {
		case 0:
			size = 0
		case 1:
			size = 1 + r.IntN(3000)
		default:
			size = r.IntN(200)
		}
		body := make([]byte, size)
		for j := range body {
			body[j] = byte(r.IntN(256))
		}
		d.Bodies = append(d.Bodies, body)
		d.Attempts = append(d.Attempts, uint32(r.IntN(5)))
		d.TimeoutNanos = append(d.TimeoutNanos, r.Int64N(1<<40)-1<<20)
		if r.IntN(5) == 0 {
			if d.Extras == nil {
				d.Extras = map[uint32]*Extras{}
			}
			d.Extras[uint32(i)] = &Extras{
				Header:   map[string]string{"content-type": "application/json", "k": fmt.Sprint(i)},
				Metadata: []*Metadata{{Key: "trace", Value: []byte{byte(i), 0xff}}},
			}
		}
	}
	return d
}

// decodeBoth decodes b with UnmarshalVT and with protobuf-go, and checks
// that they agree: both fail, or both succeed with equal messages.
func decodeBoth(t *testing.T, b []byte) *Delivery {
	t.Helper()
	fast, slow := &Delivery{}, &Delivery{}
	errFast := fast.UnmarshalVT(b)
	errSlow := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, slow)
	if (errFast == nil) != (errSlow == nil) {
		t.Fatalf("UnmarshalVT: %v; proto.Unmarshal: %v (input %x)", errFast, errSlow, b)
	}
	if errFast == nil && !proto.Equal(fast, slow) {
		t.Fatalf("UnmarshalVT decoded\n%v\nproto.Unmarshal decoded\n%v", fast, slow)
	}
	return fast
}

func TestUnmarshalVTMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 17, 256} {
		for range 5 {
			d := randomDelivery(r, n)
			b, err := proto.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeBoth(t, b)
			if !proto.Equal(got, d) {
				t.Fatalf("%d messages: decoded %v, want %v", n, got, d)
			}
		}
	}
}

// What protobuf-go's encoder does not produce but a decoder must accept:
// unpacked repeated varints, a map entry's value before its key, a
// repeated map key and a repeated singular field (the last wins), fields
// of a wrong wire type and unknown fields (skipped).
func TestUnmarshalVTOddEncodings(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, fieldSubscription, protowire.BytesType)
	b = protowire.AppendString(b, "first")
	b = protowire.AppendTag(b, fieldSubscription, protowire.BytesType)
	b = protowire.AppendString(b, "second")
	b = protowire.AppendTag(b, fieldTopic, protowire.VarintType) // wrong type: unknown
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 99, protowire.Fixed64Type) // unknown field
	b = protowire.AppendFixed64(b, 1)
	b = protowire.AppendTag(b, 100, protowire.StartGroupType) // unknown group
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 100, protowire.EndGroupType)
	for i := range 3 {
		b = protowire.AppendTag(b, fieldIDs, protowire.BytesType)
		b = protowire.AppendString(b, fmt.Sprint("id", i))
		b = protowire.AppendTag(b, fieldBodies, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte{byte(i)})
		b = protowire.AppendTag(b, fieldAttempts, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(i+1))
	}
	b = protowire.AppendTag(b, fieldTimeouts, protowire.BytesType)
	b = protowire.AppendBytes(b, protowire.AppendVarint(protowire.AppendVarint(nil, 300), uint64(1<<63)))
	b = protowire.AppendTag(b, fieldTimeouts, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	extras := func(key uint32, value string, valueFirst bool) []byte {
		v, _ := proto.Marshal(&Extras{Header: map[string]string{"h": value}})
		var e []byte
		if valueFirst {
			e = protowire.AppendBytes(protowire.AppendTag(e, fieldValue, protowire.BytesType), v)
		}
		e = protowire.AppendVarint(protowire.AppendTag(e, fieldKey, protowire.VarintType), uint64(key))
		if !valueFirst {
			e = protowire.AppendBytes(protowire.AppendTag(e, fieldValue, protowire.BytesType), v)
		}
		return e
	}
	for _, e := range [][]byte{extras(2, "old", false), extras(2, "new", true), extras(0, "zero", true)} {
		b = protowire.AppendTag(b, fieldExtras, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	got := decodeBoth(t, b)
	if got.Subscription != "second" || len(got.Ids) != 3 || got.Ids[2] != "id2" || len(got.Attempts) != 3 || got.Attempts[2] != 3 ||
		len(got.TimeoutNanos) != 3 || got.TimeoutNanos[1] != -1<<63 || got.Extras[2].Header["h"] != "new" || got.Extras[0] == nil {
		t.Fatalf("decoded %v", got)
	}
}

func TestUnmarshalVTRejects(t *testing.T) {
	good, err := proto.Marshal(randomDelivery(rand.New(rand.NewPCG(3, 4)), 3))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(good) {
		decodeBoth(t, good[:i]) // truncated: both fail, or both read a shorter message
	}
	badID := protowire.AppendString(protowire.AppendTag(nil, fieldIDs, protowire.BytesType), "\xff\xfe")
	badTopic := protowire.AppendString(protowire.AppendTag(nil, fieldTopic, protowire.BytesType), "a\xc0")
	badExtras := protowire.AppendBytes(protowire.AppendTag(nil, fieldExtras, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, fieldValue, protowire.BytesType), []byte{0x0a, 0x05, 1}))
	for name, b := range map[string][]byte{
		"invalid UTF-8 ID":         badID,
		"invalid UTF-8 topic":      badTopic,
		"truncated extras":         badExtras,
		"field number 0":           {0x02, 0x00},
		"stray end group":          protowire.AppendTag(nil, 5, protowire.EndGroupType),
		"overlong packed varint":   protowire.AppendBytes(protowire.AppendTag(nil, fieldAttempts, protowire.BytesType), []byte{0x80}),
		"length beyond the buffer": {byte(fieldBodies<<3 | 2), 10, 1},
	} {
		if err := new(Delivery).UnmarshalVT(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
		decodeBoth(t, b)
	}
}

// Bodies and IDs are copies: the input buffer can be reused at once, and
// appending to one body cannot overwrite another.
func TestUnmarshalVTBodiesAreIsolated(t *testing.T) {
	in := &Delivery{Ids: []string{"a", "b", "c"}, Bodies: [][]byte{[]byte("one"), []byte("two"), bytes.Repeat([]byte("x"), 600)}}
	b, _ := proto.Marshal(in)
	out := &Delivery{}
	if err := out.UnmarshalVT(b); err != nil {
		t.Fatal(err)
	}
	clear(b) // the transport reuses its buffer
	_ = append(out.Bodies[0], "XYZ"...)
	if string(out.Bodies[0]) != "one" || string(out.Bodies[1]) != "two" || !bytes.Equal(out.Bodies[2], in.Bodies[2]) {
		t.Fatalf("bodies after the input was cleared and one appended to: %q", out.Bodies)
	}
	if out.Ids[0] != "a" || out.Ids[2] != "c" {
		t.Fatalf("ids after the input was cleared: %q", out.Ids)
	}
}

// A batch costs its IDs and bodies, one allocation each, and one per
// column: the columns do not grow as protobuf-go's do.
func TestUnmarshalVTAllocations(t *testing.T) {
	d := &Delivery{Subscription: "s", Topic: "t"}
	for i := range 200 {
		d.Ids = append(d.Ids, fmt.Sprint("prefix-", i))
		d.Bodies = append(d.Bodies, make([]byte, 128))
		d.Attempts = append(d.Attempts, 1)
		d.TimeoutNanos = append(d.TimeoutNanos, 1e9)
	}
	b, _ := proto.Marshal(d)
	allocs := testing.AllocsPerRun(20, func() {
		if err := new(Delivery).UnmarshalVT(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2*200+6 {
		t.Errorf("decoding 200 messages took %.0f allocations, want at most %d", allocs, 2*200+6)
	}
}

func FuzzUnmarshalVT(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 4} {
		b, _ := proto.Marshal(randomDelivery(r, n))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeBoth(t, b) })
}
