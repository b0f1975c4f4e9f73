package nats

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/brokertest"
)

// What the engines do not promise, by suite test. The suite waits for
// deliveries rather than looking when Publish returns, so it holds both
// engines to fan-out, queue groups, ordering and the rest; what is skipped
// here is what NATS does differently, and this package's own tests check
// what each engine promises instead (see the package documentation).
const (
	notAcked     = "Publish returns once the server (core) or the stream (JetStream) has the message, not once the handlers returned"
	noRetryCore  = "core NATS delivers at most once: a handler error is logged, not redelivered"
	noTargetErrs = "the publisher does not learn the handlers' outcome, so there is no PublishError naming failed targets"
	noBusy       = "NATS has no per-publisher backpressure: a full subscription drops (core) or the server holds messages back (JetStream); there is no ErrBusy"
	noKey        = "NATS queue groups pick a member themselves: WithKey is ignored"
)

var coreSkips = map[string]string{
	"Redelivery":                   noRetryCore,
	"RedeliveryExhausted":          noTargetErrs,
	"QueueGroupFailover":           noRetryCore,
	"Backpressure":                 noBusy,
	"BackpressureAcrossPublishers": noBusy,
	"ManualAck":                    "core NATS has no acknowledgements: Publish does not wait for Ack and Nack does not redeliver",
	"Async":                        noTargetErrs,
	"Key":                          noKey,
	"PublishWaitsForHandlers":      notAcked,
}

var jetStreamSkips = map[string]string{
	"RedeliveryExhausted":          noTargetErrs + " (exhausted messages go to the dead-letter subject: TestJetStreamDeadLetter)",
	"QueueGroupFailover":           "JetStream redelivers to any member of a queue group's consumer, not preferably another one",
	"Backpressure":                 noBusy,
	"BackpressureAcrossPublishers": noBusy,
	"ManualAck":                    "the suite checks that Publish waits for a manual Ack and fails when none comes; " + notAcked + " (manual Ack and Nack are checked by TestJetStreamManualAck)",
	"Async":                        "an asynchronous publication reports a failed PubAck, not a failing handler",
	"Key":                          noKey,
	"PublishWaitsForHandlers":      notAcked,
}

// startSuiteServer is startServer with room for the suite's 1 MiB message:
// max_payload (1 MiB by default) counts the headers too.
func startSuiteServer(t *testing.T) *testServer {
	ts := &testServer{t: t, dir: t.TempDir(), port: -1, max: 2 << 20}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func newBrokers(url string, opts ...Option) brokertest.NewBrokers {
	return func(t *testing.T) []broker.Broker {
		bs := make([]broker.Broker, 3)
		for i := range bs {
			b := NewBroker(append([]Option{WithURL(url)}, opts...)...)
			if err := b.Connect(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := b.Disconnect(); err != nil {
					t.Error(err)
				}
			})
			bs[i] = b
		}
		return bs
	}
}

func TestBrokerCore(t *testing.T) {
	leakcheck.Check(t)
	srv := startSuiteServer(t)
	brokertest.RunSkipping(t, newBrokers(srv.url()), coreSkips)
}

func TestBrokerJetStream(t *testing.T) {
	leakcheck.Check(t)
	srv := startSuiteServer(t)
	brokertest.RunSkipping(t, newBrokers(srv.url(), WithJetStream("brokertest"), WithBackOff(time.Millisecond)), jetStreamSkips)
}
