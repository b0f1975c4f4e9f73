package webrpc

import (
	"encoding/base64"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// rangeMD calls f with every key and value of md fit to send as a header:
// reserved and invalid keys are skipped, -bin values base64-encoded.
func rangeMD(md metadata.MD, f func(k, v string)) {
	for k, vs := range md {
		if wire.ReservedHTTPHeader(k) || !wire.ValidMetadataKey(k) {
			continue
		}
		bin := wire.IsBinHeader(k)
		for _, v := range vs {
			if bin {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			} else if !wire.ValidFieldValue(v) {
				continue
			}
			f(k, v)
		}
	}
}
