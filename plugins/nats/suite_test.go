package nats

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/brokertest"
)

// Neither engine makes Publish wait for the subscribers' handlers, which
// most of the shared suite checks as soon as Publish returns; the tests in
// this package check what each engine promises instead (see the package
// documentation).
const (
	notAcked     = "Publish returns once the server has the message, not once handlers acknowledged it: the suite checks deliveries as soon as Publish returns (fan-out and queue groups are checked by this package's own tests)"
	noRetryCore  = "core NATS delivers at most once: a handler error is logged, not redelivered"
	noTargetErrs = "the publisher does not learn the handlers' outcome, so there is no PublishError naming failed targets"
	noBusy       = "NATS has no per-publisher backpressure: a full subscription drops (core) or the server holds messages back (JetStream); there is no ErrBusy"
	noKey        = "NATS queue groups pick a member themselves: WithKey is ignored"
)

var coreSkips = map[string]string{
	"FanOut":                       notAcked,
	"QueueGroup":                   notAcked,
	"Redelivery":                   noRetryCore,
	"RedeliveryExhausted":          noTargetErrs,
	"QueueGroupFailover":           noRetryCore,
	"Ordering":                     notAcked,
	"Unsubscribe":                  notAcked,
	"Deadline":                     "Publish returns before the handler runs, so it does not end at the deadline the handler overruns (the deadline reaching the handler is checked by TestMetadataAndDeadline)",
	"LargeMessage":                 notAcked,
	"ConcurrentPublishers":         notAcked,
	"Backpressure":                 noBusy,
	"BackpressureAcrossPublishers": noBusy,
	"ManualAck":                    "core NATS has no acknowledgements: Publish does not wait for Ack and Nack does not redeliver",
	"Async":                        noTargetErrs,
	"Key":                          noKey,
	"Typed":                        notAcked + "; an undecodable body is a handler error the publisher never hears of",
}

var jetStreamSkips = map[string]string{
	"FanOut":                       notAcked,
	"QueueGroup":                   notAcked,
	"Redelivery":                   notAcked + " (redelivery is checked by TestJetStreamRedelivery)",
	"RedeliveryExhausted":          noTargetErrs + " (exhausted messages go to the dead-letter subject: TestJetStreamDeadLetter)",
	"QueueGroupFailover":           "JetStream redelivers to any member of a queue group's consumer, not preferably another one",
	"Ordering":                     notAcked,
	"Unsubscribe":                  notAcked,
	"Deadline":                     "Publish returns once the stream stored the message, so it does not end at the deadline the handler overruns",
	"LargeMessage":                 notAcked,
	"ConcurrentPublishers":         notAcked,
	"Backpressure":                 noBusy,
	"BackpressureAcrossPublishers": noBusy,
	"ManualAck":                    notAcked + " (manual Ack and Nack are checked by TestJetStreamManualAck)",
	"Async":                        "an asynchronous publication reports a failed PubAck, not a failing handler",
	"Key":                          noKey,
	"Typed":                        notAcked + "; an undecodable body is a handler error the publisher never hears of",
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
	srv := startServer(t)
	brokertest.RunSkipping(t, newBrokers(srv.url()), coreSkips)
}

func TestBrokerJetStream(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	brokertest.RunSkipping(t, newBrokers(srv.url(), WithJetStream("brokertest"), WithBackOff(time.Millisecond)), jetStreamSkips)
}
