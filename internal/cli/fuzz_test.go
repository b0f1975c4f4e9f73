package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// FuzzFileSet feeds the file descriptors of a reflection answer, as a
// server would send them (field 1, repeated bytes: the wire form of
// FileDescriptorResponse and of FileDescriptorSet alike), to the fileSet
// that collects and builds them. Whatever the bytes, it must return an
// error or Files, within its limits, and never panic.
func FuzzFileSet(f *testing.F) {
	var set descriptorpb.FileDescriptorSet
	set.File = append(set.File, protodesc.ToFileDescriptorProto(greeterpb.File_greeter_proto))
	grpcapi.Files().RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
		return true
	})
	b, _ := proto.Marshal(&set)
	f.Add(b)
	f.Add([]byte{})
	// Two files, one importing the other and a well-known type.
	b, _ = proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{{
		Name: proto.String("b.proto"), Package: proto.String("b"), Syntax: proto.String("proto3"),
		Dependency: []string{"a.proto", "google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("B"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("a"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".a.A")},
			{Name: proto.String("at"), Number: proto.Int32(2), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".google.protobuf.Timestamp")},
		}}},
	}, {
		Name: proto.String("a.proto"), Package: proto.String("a"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("A")}},
	}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s fileSet
		for len(data) > 0 {
			num, typ, n := protowire.ConsumeTag(data)
			if n < 0 {
				return
			}
			data = data[n:]
			if num != 1 || typ != protowire.BytesType {
				if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
					return
				}
				data = data[n:]
				continue
			}
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return
			}
			data = data[n:]
			if err := s.add(v); err != nil {
				return
			}
		}
		if len(s.files) > maxFiles || s.size > maxFileBytes {
			t.Fatalf("the set holds %d files, %d bytes: past its limits", len(s.files), s.size)
		}
		_ = s.missing()
		files, err := s.build()
		if err == nil && files.NumFiles() < len(s.files) {
			t.Fatalf("built %d files of %d", files.NumFiles(), len(s.files))
		}
	})
}

// TestFileSetLimits pushes a fileSet past each of its bounds.
func TestFileSetLimits(t *testing.T) {
	file := func(name string, pad int, deps ...string) []byte {
		b, err := proto.Marshal(&descriptorpb.FileDescriptorProto{
			Name: proto.String(name), Package: proto.String("p"), Dependency: deps,
			Options: &descriptorpb.FileOptions{GoPackage: proto.String(string(make([]byte, pad)))},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var s fileSet
	for i := range maxFiles {
		if err := s.add(file(fmt.Sprintf("f%d.proto", i), 0)); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	if err := s.add(file("f0.proto", 0)); err != nil {
		t.Errorf("a file sent again: %v, want it ignored", err)
	}
	if err := s.add(file("one-too-many.proto", 0)); err == nil || !strings.Contains(err.Error(), "more than 1000 file descriptors") {
		t.Errorf("file %d: %v, want the file limit", maxFiles+1, err)
	}

	s = fileSet{}
	big := file("big.proto", maxFileBytes/2)
	if err := s.add(big); err != nil {
		t.Fatal(err)
	}
	if err := s.add(file("big2.proto", maxFileBytes/2)); err == nil || !strings.Contains(err.Error(), "bytes, which micro does not accept") {
		t.Errorf("%d bytes of descriptors: %v, want the size limit", s.size+len(big), err)
	}

	s = fileSet{}
	if err := s.add(file("a.proto", 0, "google/protobuf/timestamp.proto", "missing.proto")); err != nil {
		t.Fatal(err)
	}
	if m := s.missing(); len(m) != 1 || m[0] != "missing.proto" {
		t.Errorf("missing() = %v, want [missing.proto]: the well-known types are micro's own", m)
	}
	if _, err := s.build(); err == nil || !strings.Contains(err.Error(), "imports missing.proto, which the server did not send") {
		t.Errorf("build with a missing import: %v", err)
	}
	if err := s.add([]byte{0xff}); err == nil {
		t.Error("garbage decoded as a file descriptor")
	}
}
