package engine

import (
	"context"
	crand "crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// Outcomes a Link or a Subscription reports for a message besides nil
// (acknowledged), broker.ErrBusy and *NackError.
var (
	// ErrGone: the subscription no longer exists where it was sought.
	ErrGone = errors.New("broker: subscription gone")
	// ErrUnreachable marks link errors of batches that provably reached
	// no subscriber (connection refused, stream refused): no handler ran.
	ErrUnreachable = errors.New("broker: subscriber unreachable")
	// ErrRejected marks link errors that another attempt cannot cure,
	// such as a message larger than the subscriber accepts.
	ErrRejected = errors.New("broker: delivery rejected")
)

// NackError is the outcome of a message its handler did not process.
type NackError struct{ Err error }

func (e *NackError) Error() string { return "handler: " + e.Err.Error() }
func (e *NackError) Unwrap() error { return e.Err }

// Link carries batches of messages to subscriptions.
type Link interface {
	// Deliver sends msgs, in order, to the subscription t and sets out[i]
	// to the outcome of msgs[i]. An error means no outcome is known for
	// any of them; it wraps ErrUnreachable when none reached a handler.
	// ctx ends at the latest deadline of msgs.
	Deliver(ctx context.Context, t *Target, msgs []Outgoing, out []error) error
}

// Outgoing is one message of a batch.
type Outgoing struct {
	Msg *broker.Message
	// Ctx is the publisher's context, for its outgoing metadata. It may
	// have ended (asynchronous publications outlive it).
	Ctx      context.Context
	Deadline time.Time
	Attempt  int
}

// Config configures a Publisher.
type Config struct {
	// Name names the broker.
	Name string
	// Log is where the publisher logs; slog.Default() when nil. A broker
	// gives one that names it.
	Log *slog.Logger
	// Link carries messages.
	Link Link
	// Resolve returns a topic's subscriptions. It is called on every
	// publication and should answer from a cache.
	Resolve func(ctx context.Context, topic string) (*Targets, error)
	// Strategy chooses a queue group's member.
	Strategy selector.Strategy
	// MaxAsync is the number of asynchronous slots: a publication in
	// flight holds one per AsyncSlotBytes of body started, at least one.
	// DefaultMaxAsync by default.
	MaxAsync int
	// MaxBatch and MaxBatchBytes bound a batch; 256 messages and 1 MiB by
	// default. A message larger than MaxBatchBytes goes alone.
	MaxBatch, MaxBatchBytes int
}

// DefaultMaxAsync is the number of asynchronous slots by default: 8192
// small messages, or 64 MiB of bodies.
const DefaultMaxAsync = 8192

// AsyncSlotBytes is the body size one asynchronous slot stands for. Small
// messages take one slot each; a larger one takes one per AsyncSlotBytes,
// so that the slots bound the memory held as well as the messages.
const AsyncSlotBytes = 8 << 10

// Publisher is the publishing half of a broker.
type Publisher struct {
	cfg     Config
	async   chan struct{} // one token per asynchronous slot in use
	multi   chan struct{} // held while taking several slots, so that two takers cannot each hold part of what both need
	closing chan struct{} // closed by Close: takers waiting for slots give up
	closed  atomic.Bool
	ejected atomic.Int32 // targets ejected now; while 0, pick reads no clock

	// published is written by publishing goroutines, the others mostly by
	// senders: apart, they do not share a cache line.
	published atomic.Uint64
	_         [56]byte

	noSubscribers, delivered, redelivered, undelivered, busy atomic.Uint64
}

// NewPublisher returns a publisher; Close releases it.
func NewPublisher(cfg Config) *Publisher {
	if cfg.MaxAsync <= 0 {
		cfg.MaxAsync = DefaultMaxAsync
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default().With("broker", cfg.Name)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	return &Publisher{cfg: cfg, async: make(chan struct{}, cfg.MaxAsync), multi: make(chan struct{}, 1), closing: make(chan struct{})}
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() brokerkit.Stats {
	return brokerkit.Stats{
		Published:     p.published.Load(),
		NoSubscribers: p.noSubscribers.Load(),
		Delivered:     p.delivered.Load(),
		Redelivered:   p.redelivered.Load(),
		Undelivered:   p.undelivered.Load(),
		Busy:          p.busy.Load(),
	}
}

// Close refuses new publications, including those waiting for an
// asynchronous slot, and waits for the asynchronous ones in flight, which
// end by their deadlines.
func (p *Publisher) Close() {
	if p.closed.Swap(true) {
		return
	}
	close(p.closing)
	for i := 0; i < cap(p.async); i++ {
		p.async <- struct{}{}
	}
}

// Publish implements broker.Broker.Publish over the configured resolver
// and link.
func (p *Publisher) Publish(ctx context.Context, topic string, msg *broker.Message, opts []broker.PublishOption) error {
	if p.closed.Load() {
		return broker.ErrDisconnected
	}
	if err := brokerkit.ValidateTopic(topic); err != nil {
		return err
	}
	if msg == nil {
		return fmt.Errorf("broker: publish to %q: nil message", topic)
	}
	o := brokerkit.NewPublishOptions(opts...)
	if msg.ID == "" {
		msg.ID = NewID()
	}
	msg.Topic = topic
	msg.Header = brokerkit.WithContentType(msg.Header, o.ContentType)
	ts, err := p.cfg.Resolve(ctx, topic)
	if err != nil {
		return fmt.Errorf("broker: publish %s to %q: finding subscribers: %w", msg.ID, topic, err)
	}
	p.published.Add(1)
	n := ts.Len()
	if n == 0 {
		p.noSubscribers.Add(1)
		p.cfg.Log.Debug("broker: published to a topic without subscribers", "topic", topic, "id", msg.ID)
		if o.RequireSubscribers {
			return fmt.Errorf("broker: publish %s to %q: %w", msg.ID, topic, broker.ErrNoSubscribers)
		}
		return nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = monoNow().Add(o.Timeout)
	}
	if o.Async {
		slots := p.asyncSlots(len(msg.Body))
		if err := p.acquireAsync(ctx, o.FailFast, slots); err != nil {
			return fmt.Errorf("broker: publish %s to %q: %w", msg.ID, topic, err)
		}
		// ctx may end before delivery does: the publication uses it only
		// for its values (metadata), and its own deadline.
		pub := newPublication(p, ctx, msg, deadline, &o, ts, true)
		pub.slots = slots
		pub.start()
		return nil
	}
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	pub := newPublication(p, ctx, msg, deadline, &o, ts, false)
	pub.start()
	select {
	case <-pub.done:
		return pub.err(nil)
	case <-ctx.Done():
		return pub.err(ctx.Err())
	}
}

// asyncSlots returns the slots an asynchronous publication of a body of
// size bytes holds: one per AsyncSlotBytes started, at least one, at most
// all of them.
func (p *Publisher) asyncSlots(size int) int {
	return min(max(1, (size+AsyncSlotBytes-1)/AsyncSlotBytes), cap(p.async))
}

// acquireAsync takes n asynchronous slots, waiting for them unless
// failFast; on error it holds none.
func (p *Publisher) acquireAsync(ctx context.Context, failFast bool, n int) error {
	if n > 1 {
		// One taker of several slots at a time: takers of one slot cannot
		// deadlock with it, as they hold only what they will release.
		select {
		case p.multi <- struct{}{}:
		default:
			if failFast {
				return fmt.Errorf("asynchronous slots in use: %w", broker.ErrBusy)
			}
			select {
			case p.multi <- struct{}{}:
			case <-ctx.Done():
				return fmt.Errorf("waiting for asynchronous slots: %w", ctx.Err())
			case <-p.closing:
				return broker.ErrDisconnected
			}
		}
		defer func() { <-p.multi }()
	}
	for i := range n {
		if err := p.acquireSlot(ctx, failFast); err != nil {
			p.releaseAsync(i)
			return err
		}
	}
	if p.closed.Load() {
		p.releaseAsync(n)
		return broker.ErrDisconnected
	}
	return nil
}

func (p *Publisher) acquireSlot(ctx context.Context, failFast bool) error {
	select {
	case p.async <- struct{}{}:
		return nil
	default:
	}
	if failFast {
		return fmt.Errorf("all %d asynchronous slots in use: %w", cap(p.async), broker.ErrBusy)
	}
	select {
	case p.async <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for an asynchronous slot: %w", ctx.Err())
	case <-p.closing:
		return broker.ErrDisconnected
	}
}

func (p *Publisher) releaseAsync(n int) {
	for range n {
		<-p.async
	}
}

// publication is one message on its way to its targets.
type publication struct {
	p        *Publisher
	ctx      context.Context // the caller's; sync: ending at deadline; async: for its values only
	msg      *broker.Message // its Topic is set
	deadline time.Time
	o        options
	async    bool
	slots    int // asynchronous slots held
	jobs     []job
	one      [1]job // jobs of a publication with one target, saving an allocation

	remaining atomic.Int32
	done      chan struct{} // closed when remaining reaches 0 (sync)

	mu     sync.Mutex
	failed []failure
}

// options are what a publication keeps of its brokerkit.PublishOptions.
type options struct {
	attempts            int
	backoff, maxBackoff time.Duration
	failFast            bool
	key                 string
	onError             func(error)
}

// publications recycles asynchronous publications: one is allocated per
// message published, and nothing refers to it once its last job has
// finished (see finished), which is when it goes back.
var publications = sync.Pool{New: func() any { return new(publication) }}

func newPublication(p *Publisher, ctx context.Context, msg *broker.Message, deadline time.Time, o *brokerkit.PublishOptions, ts *Targets, async bool) *publication {
	var pub *publication
	if async {
		pub = publications.Get().(*publication)
	} else {
		pub = &publication{done: make(chan struct{})}
	}
	pub.p, pub.ctx, pub.msg, pub.deadline, pub.async = p, ctx, msg, deadline, async
	pub.o = options{
		attempts: o.Attempts, backoff: o.Backoff, maxBackoff: o.MaxBackoff,
		failFast: o.FailFast, key: o.Key, onError: o.OnError,
	}
	if n := ts.Len(); n == 1 {
		pub.jobs = pub.one[:0]
	} else {
		pub.jobs = make([]job, 0, n)
	}
	for _, t := range ts.All {
		pub.jobs = append(pub.jobs, job{pub: pub, fixed: t})
	}
	for _, g := range ts.Groups {
		pub.jobs = append(pub.jobs, job{pub: pub, group: g.Name})
	}
	pub.remaining.Store(int32(len(pub.jobs)))
	return pub
}

// start sends the message to every target. A synchronous publisher sends
// the last one itself when its outbox is idle, saving a goroutine hand-off
// in the common one-target case; the others go through their outboxes'
// senders so that targets are served in parallel. An asynchronous
// publication may finish, and be recycled, as soon as its last job is
// sent: start reads nothing of it after that.
func (pub *publication) start() {
	jobs, inline := pub.jobs, !pub.async
	for i := range jobs {
		jobs[i].send(inline && i == len(jobs)-1)
	}
}

// resolveCtx is the context to look the topic up again with: an
// asynchronous publication's own context may have ended.
func (pub *publication) resolveCtx() context.Context {
	if pub.async {
		return context.Background()
	}
	return pub.ctx
}

// stopped returns why the publication can no longer deliver, or nil.
func (pub *publication) stopped(now time.Time) error {
	if !pub.async {
		return pub.ctx.Err()
	}
	if !now.Before(pub.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (pub *publication) fail(target string, err error) {
	pub.mu.Lock()
	pub.failed = append(pub.failed, failure{target, err})
	pub.mu.Unlock()
	pub.p.undelivered.Add(1)
}

// finished counts a job done and completes the publication with the last.
func (pub *publication) finished() {
	if pub.remaining.Add(-1) != 0 {
		return
	}
	if !pub.async {
		close(pub.done)
		return
	}
	if err := pub.err(nil); err != nil {
		if pub.o.onError != nil {
			pub.o.onError(err)
		} else {
			pub.p.cfg.Log.Warn("broker: asynchronous publication not acknowledged", "topic", pub.msg.Topic, "id", pub.msg.ID, "err", err)
		}
	}
	p, slots := pub.p, pub.slots
	pub.recycle()
	p.releaseAsync(slots)
}

// recycle returns a finished asynchronous publication to the pool.
func (pub *publication) recycle() {
	for i := range pub.jobs {
		pub.jobs[i] = job{}
	}
	pub.p, pub.ctx, pub.msg, pub.o, pub.jobs, pub.slots = nil, nil, nil, options{}, nil, 0
	clear(pub.failed)
	pub.failed = pub.failed[:0]
	publications.Put(pub)
}

// err returns the publication's error: the targets that failed and, when
// ctxErr is set (the caller stopped waiting), those still pending.
func (pub *publication) err(ctxErr error) error {
	pub.mu.Lock()
	var failed map[string]error
	for _, f := range pub.failed {
		if failed == nil {
			failed = make(map[string]error, len(pub.failed))
		}
		failed[f.target] = f.err
	}
	pub.mu.Unlock()
	if ctxErr != nil {
		for i := range pub.jobs {
			j := &pub.jobs[i]
			if !j.over.Load() {
				if failed == nil {
					failed = map[string]error{}
				}
				failed[j.describe()] = fmt.Errorf("not acknowledged before the context ended: %w", ctxErr)
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return brokerkit.NewPublishError(pub.msg.Topic, pub.msg.ID, len(pub.jobs), failed)
}

// failure is a target that did not acknowledge, and why.
type failure struct {
	target string
	err    error
}

// job is a publication's delivery to one target: a group-less subscription
// (fixed) or a queue group.
type job struct {
	pub   *publication
	fixed *Target
	group string

	// Owned by whoever runs the job: it is in one place at a time (being
	// started, in an outbox, in a batch, waiting for a retry).
	cur      *Target
	attempts int      // deliveries that reached, or may have reached, a handler
	busy     int      // refusals at capacity since the last backoff
	tried    []string // members passed over since the last backoff
	avoid    string   // member to prefer not to use again
	last     error    // the last failure; leaving (ErrGone) is none

	over atomic.Bool // the job has finished
}

func (j *job) describe() string {
	if j.fixed != nil {
		if j.fixed.Address != "" {
			return fmt.Sprintf("subscriber %q at %s", j.fixed.ID, j.fixed.Address)
		}
		return fmt.Sprintf("subscriber %q", j.fixed.ID)
	}
	return fmt.Sprintf("queue group %q", j.group)
}

// start chooses the job's target and queues the message there. inline
// lets the caller run the outbox's sender itself.
func (j *job) start(inline bool) {
	if err := j.pub.stopped(time.Now()); err != nil {
		j.finish(j.orLast(err))
		return
	}
	j.send(inline)
}

// send is start without the deadline check, which Publish has just made.
func (j *job) send(inline bool) {
	pub := j.pub
	t := j.fixed
	if t == nil {
		ts, err := pub.p.cfg.Resolve(pub.resolveCtx(), pub.msg.Topic)
		if err != nil {
			j.finish(j.orLast(err))
			return
		}
		g := ts.group(j.group)
		if t = pub.p.pick(g, j.tried, j.avoid, pub.o.key); t == nil {
			switch {
			case j.last == nil:
				// The group has left since the message was published.
				j.skip()
			case errors.Is(j.last, broker.ErrBusy) && !pub.o.failFast:
				// Every member is at capacity: wait for room.
				j.tried = j.tried[:0]
				j.retryAfter(j.busyDelay(), false)
			default:
				j.finish(j.last)
			}
			return
		}
	}
	j.cur = t
	if pub.o.failFast && t.full() {
		// Its window is taken by this publisher's own messages: the
		// subscription would refuse this one.
		j.result(broker.ErrBusy)
		return
	}
	t.st.inflight.Add(1)
	pub.p.enqueue(t, j, inline)
}

// orLast returns err, the reason a job stops, with the job's last failure.
func (j *job) orLast(err error) error {
	switch {
	case j.last == nil:
		return err
	case errors.Is(j.last, err):
		return j.last
	}
	return fmt.Errorf("%w (last failure: %w)", err, j.last)
}

// result handles the outcome of one delivery of the job's message; the
// caller has taken it off j.cur's inflight count and, when acknowledged,
// counted it delivered.
func (j *job) result(err error) {
	pub, t := j.pub, j.cur
	if err == nil {
		pub.p.recovered(t)
		j.over.Store(true)
		pub.finished()
		return
	}
	if errors.Is(err, ErrGone) {
		// It unsubscribed: the message is no longer its. A group's goes
		// to another member.
		if j.fixed != nil {
			j.skip()
			return
		}
		j.tried = append(j.tried, t.ID)
		j.start(false)
		return
	}
	if t.Address != "" {
		err = fmt.Errorf("%s: %w", t.Address, err)
	}
	j.last = err
	switch {
	case errors.Is(err, broker.ErrBusy):
		pub.p.busy.Add(1)
		switch {
		case j.fixed == nil:
			j.tried = append(j.tried, t.ID)
			j.start(false)
		case pub.o.failFast:
			j.finish(err)
		default:
			j.retryAfter(j.busyDelay(), false)
		}
	case errors.Is(err, ErrRejected):
		j.finish(err)
	case errors.Is(err, ErrUnreachable):
		pub.p.eject(t)
		if j.fixed == nil {
			j.tried = append(j.tried, t.ID)
			j.start(false)
			return
		}
		j.redeliver()
	default:
		if serr := pub.stopped(time.Now()); serr != nil {
			j.finish(j.orLast(serr))
			return
		}
		if j.fixed == nil {
			j.avoid = t.ID
		}
		j.attempts++
		j.redeliver()
	}
}

// redeliver sends the message again after the backoff, unless the attempts
// are spent.
func (j *job) redeliver() {
	o := &j.pub.o
	n := j.attempts
	if j.fixed != nil && errors.Is(j.last, ErrUnreachable) {
		n++ // an unreachable subscriber spends attempts too, or it would be tried until the deadline
		j.attempts = n
	}
	if n >= o.attempts {
		j.finish(j.last)
		return
	}
	d := o.backoff
	for i := 1; i < n && d < o.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.maxBackoff)
	j.tried = j.tried[:0]
	j.retryAfter(jitter(d), true)
}

// busyDelay is the wait before retrying targets at capacity: 1 ms doubling
// to 64 ms, short because room usually comes as soon as a handler returns.
func (j *job) busyDelay() time.Duration {
	j.busy++
	return time.Millisecond << min(j.busy-1, 6)
}

func (j *job) retryAfter(d time.Duration, counted bool) {
	pub := j.pub
	if time.Now().Add(d).After(pub.deadline) {
		j.finish(j.orLast(context.DeadlineExceeded))
		return
	}
	if counted {
		pub.p.redelivered.Add(1)
	}
	time.AfterFunc(d, func() { j.start(false) })
}

func jitter(d time.Duration) time.Duration {
	// ±20%, so that messages failed together do not retry in lockstep.
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}

func (j *job) finish(err error) {
	j.over.Store(true)
	j.pub.fail(j.describe(), err)
	j.pub.finished()
}

// skip ends the job without a delivery that was owed.
func (j *job) skip() {
	j.over.Store(true)
	j.pub.finished()
}

// maxSenders bounds the batches in flight to one target from one
// publisher: enough to keep a subscriber with several handler slots busy
// while a batch is on the wire, few enough that batches form under load.
const maxSenders = 4

// enqueue puts j in t's outbox and starts a sender if the outbox may have
// another batch in flight.
func (p *Publisher) enqueue(t *Target, j *job, inline bool) {
	st := t.st
	st.mu.Lock()
	st.queue.push(j)
	start := st.senders < maxSenders && (t.Window <= 0 || st.sent < t.Window)
	if start {
		st.senders++
	}
	st.mu.Unlock()
	if !start {
		return // a sender in flight takes it when its batch returns
	}
	if inline {
		p.send(t, true)
		return
	}
	go p.send(t, false)
}

// full reports whether t has a window's worth of messages from this
// publisher queued or in flight.
func (t *Target) full() bool {
	return t.Window > 0 && int(t.st.inflight.Load()) >= t.Window
}

// send drains t's outbox a batch at a time: while batches are in flight the
// next one gathers, so that under load one RPC carries many messages and at
// rest a message goes out at once. once sends a single batch and hands the
// rest to a new sender, so that a synchronous publisher running it returns.
func (p *Publisher) send(t *Target, once bool) {
	st := t.st
	var batch []*job
	var outs []Outgoing
	var errs []error
	for {
		st.mu.Lock()
		room := p.cfg.MaxBatch
		if t.Window > 0 {
			room = min(room, t.Window-st.sent)
		}
		batch = p.take(st, batch[:0], room)
		if len(batch) == 0 {
			st.senders--
			st.mu.Unlock()
			return
		}
		st.sent += len(batch)
		st.mu.Unlock()
		outs, errs = p.deliver(t, batch, outs, errs)
		if once {
			st.mu.Lock()
			if st.queue.len() == 0 {
				st.senders--
				st.mu.Unlock()
				return
			}
			st.mu.Unlock()
			go p.send(t, false)
			return
		}
	}
}

// take moves the next batch, at most room messages, from st's outbox to
// batch; st.mu held.
func (p *Publisher) take(st *state, batch []*job, room int) []*job {
	q := st.queue.jobs[st.queue.head:]
	n, size := 0, 0
	for n < len(q) && n < room {
		size += len(q[n].pub.msg.Body)
		if n > 0 && size > p.cfg.MaxBatchBytes {
			break
		}
		n++
	}
	batch = append(batch, q[:n]...)
	st.queue.drop(n)
	return batch
}

// outbox is a FIFO of jobs. It takes from a head index rather than
// shifting the slice, so that taking a batch from a long outbox costs the
// batch, not the outbox.
type outbox struct {
	jobs []*job
	head int
}

func (q *outbox) len() int { return len(q.jobs) - q.head }

func (q *outbox) push(j *job) {
	if q.head > 0 && len(q.jobs) == cap(q.jobs) {
		// Full at the back with room at the front: move down, once per
		// capacity's worth of pushes at most.
		n := copy(q.jobs, q.jobs[q.head:])
		clear(q.jobs[n:])
		q.jobs, q.head = q.jobs[:n], 0
	}
	q.jobs = append(q.jobs, j)
}

// drop forgets the n jobs at the front.
func (q *outbox) drop(n int) {
	clear(q.jobs[q.head : q.head+n])
	q.head += n
	if q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	}
}

// deliver sends one batch and hands each job its outcome. It returns the
// scratch slices for reuse.
func (p *Publisher) deliver(t *Target, batch []*job, outs []Outgoing, errs []error) ([]Outgoing, []error) {
	now := time.Now()
	live := batch[:0]
	outs = outs[:0]
	var latest time.Time
	for _, j := range batch {
		pub := j.pub
		if err := pub.stopped(now); err != nil {
			t.st.inflight.Add(-1)
			j.finish(j.orLast(err))
			continue
		}
		live = append(live, j)
		outs = append(outs, Outgoing{Msg: pub.msg, Ctx: pub.ctx, Deadline: pub.deadline, Attempt: j.attempts + 1})
		if pub.deadline.After(latest) {
			latest = pub.deadline
		}
	}
	if len(live) == 0 {
		t.st.mu.Lock()
		t.st.sent -= len(batch)
		t.st.mu.Unlock()
		return outs, errs
	}
	if cap(errs) < len(live) {
		errs = make([]error, len(live))
	}
	errs = errs[:len(live)]
	clear(errs)
	var err error
	if len(live) == 1 && !live[0].pub.async {
		// A synchronous publisher's lone message: its context ends the
		// call, cancellation included.
		err = p.cfg.Link.Deliver(live[0].pub.ctx, t, outs, errs)
	} else {
		ctx, cancel := context.WithDeadline(context.Background(), latest)
		err = p.cfg.Link.Deliver(ctx, t, outs, errs)
		cancel()
	}
	t.st.mu.Lock()
	t.st.sent -= len(batch)
	t.st.mu.Unlock()
	// Counters shared with publishing goroutines change once per batch,
	// not once per message.
	t.st.inflight.Add(-int32(len(live)))
	if err == nil {
		acked := 0
		for _, e := range errs {
			if e == nil {
				acked++
			}
		}
		p.delivered.Add(uint64(acked))
	}
	for i, j := range live {
		e := err
		if e == nil {
			e = errs[i]
		}
		j.result(e)
	}
	clear(outs)
	clear(errs)
	return outs, errs
}

// epoch anchors monoNow.
var epoch = time.Now()

// monoNow returns the current time as time.Now does, but read from the
// monotonic clock alone: time.Now reads the wall clock too, which costs as
// much again, and Publish asks once per message. The time's wall reading
// is epoch's plus the monotonic time elapsed since; comparisons and
// durations, which use the monotonic reading, are exact.
func monoNow() time.Time { return epoch.Add(time.Since(epoch)) }

// IDs are a random per-process prefix and a counter: unique across
// processes with overwhelming probability, and one allocation each.
var (
	idPrefix = func() string {
		var b [10]byte
		crand.Read(b[:])
		return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	}()
	idSeq atomic.Uint64
)

// NewID returns a new message or subscription ID.
func NewID() string {
	var buf [40]byte
	b := append(buf[:0], idPrefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, idSeq.Add(1), 36)
	return string(b)
}
