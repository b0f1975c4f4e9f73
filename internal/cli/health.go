package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var healthCmd = &command{
	name:    "health",
	args:    "<service>",
	summary: "check every node of a service with grpc.health.v1 Check",
	help: `
Asks each node of the service the registry lists (every version) for its
health with grpc.health.v1.Health/Check, in parallel, and prints one line
per node: node ID, version, address and status (SERVING, NOT_SERVING,
SERVICE_UNKNOWN, or the error of the check). -service asks about one proto
service (e.g. greeter.v1.Greeter) instead of the server as a whole.
-address checks only the server at host:port. Each check gives up after
-timeout, 5s by default.

Exit status: 0 when every node is SERVING; 64+code when a check failed
(the first node's, in the order printed); 1 when a node answered with
another status. With -o json, prints one JSON array.
`,
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.StringVar(&o.hservice, "service", "", "proto service to check, e.g. greeter.v1.Greeter (default: the server as a whole)")
		fs.StringVar(&o.address, "address", "", "check the server at host:port instead of the nodes in the registry")
	},
	run: runHealth,
}

// maxHealthNodes bounds the nodes checked, and healthParallel how many at
// once: a registry's records come from anyone on the network.
const (
	maxHealthNodes       = 1000
	healthParallel       = 16
	defaultHealthTimeout = 5 * time.Second
)

type nodeHealth struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	Address string `json:"address"`
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
	code    int
}

func runHealth(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want <service>, got %d arguments", len(args))
	}
	service := args[0]
	var results []*nodeHealth
	if e.address != "" {
		results = []*nodeHealth{{Node: "-", Version: "-", Address: e.address}}
	} else {
		r, err := e.registry()
		if err != nil {
			return err
		}
		start := time.Now()
		svcs, err := r.GetService(ctx, service)
		if err != nil {
			return e.notFound(service, time.Since(start), err)
		}
		sortServices(svcs)
		for _, s := range svcs {
			for _, n := range s.Nodes {
				results = append(results, &nodeHealth{Node: n.ID, Version: s.Version, Address: n.Address})
			}
		}
		if len(results) == 0 {
			return e.notFound(service, time.Since(start), registry.ErrNotFound)
		}
		if len(results) > maxHealthNodes {
			return fmt.Errorf("the registry lists %d nodes of %q, more than micro checks (%d)", len(results), service, maxHealthNodes)
		}
	}
	cli, err := e.client()
	if err != nil {
		return err
	}
	timeout := e.timeout
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, healthParallel)
	for _, h := range results {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			check(ctx, cli, service, e.hservice, timeout, h)
		}()
	}
	wg.Wait()

	if e.output == "json" {
		if err := writeJSON(e.stdout, results); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tVERSION\tADDRESS\tSTATUS")
		for _, h := range results {
			st := h.Status
			if h.Error != "" {
				st = "error: " + h.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(h.Node), printable(h.Version), printable(h.Address), st)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, h := range results {
		if h.Error != "" {
			return &exitError{h.code, fmt.Errorf("checking %s at %s: %s", printable(h.Node), printable(h.Address), h.Error)}
		}
	}
	for _, h := range results {
		if h.Status != "SERVING" {
			return fmt.Errorf("%s at %s is %s", printable(h.Node), printable(h.Address), h.Status)
		}
	}
	return nil
}

// check asks the node at h.Address for its health and records the answer
// in h.
func check(ctx context.Context, cli client.Client, service, hservice string, timeout time.Duration, h *nodeHealth) {
	req := grpcapi.NewRequest(grpcapi.HealthCheck)
	req.Set(req.Descriptor().Fields().ByName("service"), protoreflect.ValueOfString(hservice))
	rsp := grpcapi.NewResponse(grpcapi.HealthCheck)
	err := cli.Call(ctx, service, grpcapi.HealthCheck, req, rsp,
		client.WithAddress(h.Address), client.WithRetries(0), client.WithRequestTimeout(timeout))
	if err != nil {
		st := status.Convert(err)
		h.Status, h.code = st.Code().String(), exitRPC+int(st.Code())
		h.Error = fmt.Sprintf("%s: %s", st.Code(), printable(st.Message()))
		if st.Code() == status.Unimplemented {
			h.Error += " (the server may have health checking off)"
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			h.Error += " (-timeout)"
		}
		return
	}
	fd := rsp.Descriptor().Fields().ByName("status")
	n := rsp.Get(fd).Enum()
	if v := fd.Enum().Values().ByNumber(n); v != nil {
		h.Status = string(v.Name())
	} else {
		h.Status = fmt.Sprintf("STATUS_%d", n)
	}
}
