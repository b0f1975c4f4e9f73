package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkServer/rpc=unary-16B/impl=micro-2         	  174174	     12796 ns/op	   1.25 MB/s	    5567 B/op	      81 allocs/op
BenchmarkServer/rpc=unary-16B/impl=grpc-2          	  116641	     25592 ns/op	   0.77 MB/s	    8317 B/op	     133 allocs/op
SKIP BenchmarkServer/rpc=unary-1MiB/impl=micro: a single call fails
BenchmarkServer/rpc=serverstream-1000x16B/impl=micro-2 	 2006245	      1325 ns/op
BenchmarkConnectHTTP1/rpc=connect-json-unary-16B/impl=micro-2         	   50000	     30000 ns/op	   0.53 MB/s	    5000 B/op	      60 allocs/op
BenchmarkConnectHTTP1/rpc=connect-json-unary-16B/impl=connect-2       	   40000	     45000 ns/op	   0.36 MB/s	    7000 B/op	      90 allocs/op
BenchmarkBroker/shape=1to1/size=128B/impl=micro-async-2   	 2836406	       759.0 ns/op	 168.65 MB/s	      1336 cpu-ns/msg	 1300000 msgs/s
BenchmarkBroker/shape=1to1/size=128B/impl=nats-core-2     	 3937648	       627.0 ns/op	 204.15 MB/s	      1190 cpu-ns/msg	 1600000 msgs/s
BenchmarkBroker/shape=1to1/size=128B/impl=micro-sync-2    	  304160	      7000 ns/op	 158000 msgs/s
PASS
`

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(strings.NewReader(sample), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, sample) {
		t.Error("the input is not copied first")
	}
	if strings.Contains(got[len(sample):], "nats-core  627") {
		t.Error("a broker row is in the table against grpc-go")
	}
	for _, want := range []string{
		"BenchmarkServer/rpc=unary-16B  micro  12796     2.00×         81                133",
		"BenchmarkServer/rpc=unary-16B   grpc  25592     1.00×        133                133",
		"BenchmarkServer/rpc=serverstream-1000x16B  micro   1325         -          -                  -",
		"BenchmarkConnectHTTP1/rpc=connect-json-unary-16B    micro  30000     1.50×         60                 90",
		"BenchmarkBroker/shape=1to1/size=128B  micro-async  1300000     nats-core      1600000  0.81×",
		"BenchmarkBroker/shape=1to1/size=128B   micro-sync   158000  nats-request            -      -",
	} {
		// Columns are aligned to the longest name: compare words only.
		if !strings.Contains(strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestRunFails(t *testing.T) {
	for _, in := range []string{"PASS\n", sample + "--- FAIL: BenchmarkX\nFAIL\n"} {
		if err := run(strings.NewReader(in), new(strings.Builder)); err == nil {
			t.Errorf("no error for input %q", in)
		}
	}
}
