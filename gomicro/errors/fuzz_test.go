package errors

import (
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// FuzzParse: the message of an error a peer sent (JSON or not) is parsed
// without failing, and what is parsed prints as JSON that parses back to
// the same error (text that is not UTF-8 is mended by the first print). The
// transport bounds the message by the header list size.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "plain", `{"id":"x","code":404,"detail":"gone","status":"Not Found"}`, `{"code":"400"}`, `{`, `null`, `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Parse(s)
		if e == nil {
			t.Fatal("Parse returned nil")
		}
		once := Parse(e.Error())
		twice := Parse(once.Error())
		if once.Id != twice.Id || once.Code != twice.Code || once.Detail != twice.Detail || once.Status != twice.Status {
			t.Fatalf("Parse(%q) prints as %q: its round trips differ, %+v then %+v", s, e.Error(), once, twice)
		}
		// As a call's error: FromError never fails either.
		if FromError(status.New(status.Unknown, s)) == nil {
			t.Fatal("FromError returned nil")
		}
	})
}
