package direct

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/internal/brokerpb"
	"github.com/protoc-gen-micro/micro/runtime/broker/internal/engine"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// link delivers batches with the Deliver RPC, over the client's pooled
// connection to the subscriber's address.
type link struct {
	svc brokerpb.BrokerService
}

// scratch is the request a sender builds a batch into. It is encoded
// before Deliver returns and referenced no longer, so senders recycle its
// columns, which grow to the size of the largest batch.
type scratch struct {
	req      brokerpb.Delivery
	ids      []string
	bodies   [][]byte
	attempts []uint32
	timeouts []int64
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

func (l link) Deliver(ctx context.Context, t *engine.Target, msgs []engine.Outgoing, out []error) error {
	sc := scratches.Get().(*scratch)
	defer func() {
		clear(sc.ids[:cap(sc.ids)])
		clear(sc.bodies[:cap(sc.bodies)])
		sc.req = brokerpb.Delivery{}
		scratches.Put(sc)
	}()
	req := &sc.req
	req.Subscription, req.Topic = t.ID, msgs[0].Msg.Topic
	ids, bodies, attempts, timeouts := sc.ids[:0], sc.bodies[:0], sc.attempts[:0], sc.timeouts[:0]
	now := time.Now()
	for i := range msgs {
		m := &msgs[i]
		var timeout int64
		if !m.Deadline.IsZero() {
			timeout = max(1, int64(m.Deadline.Sub(now)))
		}
		ids = append(ids, m.Msg.ID)
		bodies = append(bodies, m.Msg.Body)
		attempts = append(attempts, uint32(m.Attempt))
		timeouts = append(timeouts, timeout)
		var x *brokerpb.Extras
		if len(m.Msg.Header) > 0 {
			x = &brokerpb.Extras{Header: m.Msg.Header}
		}
		mdctx.RangeOutgoing(m.Ctx, func(k, v string) {
			if x == nil {
				x = &brokerpb.Extras{}
			}
			x.Metadata = append(x.Metadata, &brokerpb.Metadata{Key: k, Value: []byte(v)})
		})
		if x != nil {
			if req.Extras == nil {
				req.Extras = map[uint32]*brokerpb.Extras{}
			}
			req.Extras[uint32(i)] = x
		}
	}
	sc.ids, sc.bodies, sc.attempts, sc.timeouts = ids, bodies, attempts, timeouts
	req.Ids, req.Bodies, req.Attempts, req.TimeoutNanos = ids, bodies, attempts, timeouts
	rsp, err := l.svc.Deliver(ctx, req, t.Handle.([]client.CallOption)...)
	if err != nil {
		switch {
		case errors.Is(err, transport.ErrUnprocessed):
			return fmt.Errorf("%w: %w", engine.ErrUnreachable, err)
		case status.CodeOf(err) == status.Unimplemented:
			// Something else listens there now: the subscriber is gone.
			return fmt.Errorf("%w: %w", engine.ErrGone, err)
		case status.CodeOf(err) == status.ResourceExhausted:
			// The batch is larger than the subscriber accepts.
			return fmt.Errorf("%w: %w", engine.ErrRejected, err)
		}
		return err
	}
	if len(rsp.Results) != len(msgs) {
		return fmt.Errorf("broker/direct: %s answered %d results for %d messages", t.Address, len(rsp.Results), len(msgs))
	}
	for i, r := range rsp.Results {
		switch r {
		case brokerpb.Result_RESULT_ACKED:
			out[i] = nil
		case brokerpb.Result_RESULT_NACKED:
			out[i] = &engine.NackError{Err: errors.New(rsp.Reasons[uint32(i)])}
		case brokerpb.Result_RESULT_BUSY:
			out[i] = broker.ErrBusy
		case brokerpb.Result_RESULT_GONE:
			out[i] = engine.ErrGone
		default:
			out[i] = fmt.Errorf("broker/direct: %s answered result %v", t.Address, r)
		}
	}
	return nil
}

// deliverHandler serves the Deliver RPC: it hands each batch to the
// subscription it names.
type deliverHandler struct{ b *directBroker }

func (h deliverHandler) Deliver(ctx context.Context, in *brokerpb.Delivery, out *brokerpb.Ack) error {
	n := len(in.Ids)
	if len(in.Bodies) != n || len(in.Attempts) != n || len(in.TimeoutNanos) != n {
		return status.Errorf(status.InvalidArgument, "broker/direct: delivery columns of unequal length: %d ids, %d bodies, %d attempts, %d timeouts",
			n, len(in.Bodies), len(in.Attempts), len(in.TimeoutNanos))
	}
	out.Results = make([]brokerpb.Result, n)
	sub := h.b.lookup(in.Subscription)
	if sub == nil || sub.Topic != in.Topic {
		for i := range out.Results {
			out.Results[i] = brokerpb.Result_RESULT_GONE
		}
		return nil
	}
	inb := make([]engine.Inbound, n) // one allocation for the batch
	now := time.Now()
	for i, id := range in.Ids {
		d := &inb[i]
		d.Msg = broker.Message{ID: id, Topic: in.Topic, Body: in.Bodies[i], Attempt: int(in.Attempts[i])}
		if t := in.TimeoutNanos[i]; t > 0 {
			d.Deadline = now.Add(time.Duration(t))
		}
		if x := in.Extras[uint32(i)]; x != nil {
			d.Msg.Header = x.Header
			if len(x.Metadata) > 0 {
				md := make(metadata.MD, len(x.Metadata))
				for _, kv := range x.Metadata {
					md[kv.Key] = append(md[kv.Key], string(kv.Value))
				}
				d.MD = md
			}
		}
	}
	sub.Deliver(ctx, inb)
	for i := range inb {
		err := inb[i].Err
		switch {
		case err == nil:
			out.Results[i] = brokerpb.Result_RESULT_ACKED
			continue
		case errors.Is(err, broker.ErrBusy):
			out.Results[i] = brokerpb.Result_RESULT_BUSY
			continue
		case errors.Is(err, engine.ErrGone):
			out.Results[i] = brokerpb.Result_RESULT_GONE
		default:
			out.Results[i] = brokerpb.Result_RESULT_NACKED
		}
		if out.Reasons == nil {
			out.Reasons = map[uint32]string{}
		}
		var nack *engine.NackError
		if errors.As(err, &nack) {
			err = nack.Err // the publisher wraps it again
		}
		out.Reasons[uint32(i)] = err.Error()
	}
	return nil
}
