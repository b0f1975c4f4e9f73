package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

var servicesCmd = &command{
	name:    "services",
	args:    "[service]",
	summary: "list the services the registry sees, with their versions and nodes",
	help: `
Lists every service the registry knows, or only the one named: one line
per node with its service, version, node ID, address and metadata. The
direct broker's subscriptions show as services named micro.broker.<topic>.
With -o json, prints the registry's records as one JSON array.
`,
	run: runServices,
}

func runServices(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("want at most one service name, got %d arguments", len(args))
	}
	r, err := e.registry()
	if err != nil {
		return err
	}
	start := time.Now()
	var svcs []*registry.Service
	if len(args) == 1 {
		svcs, err = r.GetService(ctx, args[0])
		if err != nil {
			return e.notFound(args[0], time.Since(start), err)
		}
	} else if svcs, err = r.ListServices(ctx); err != nil {
		return fmt.Errorf("listing services in %s: %w", e.where(), err)
	}
	sortServices(svcs)
	if e.output == "json" {
		if svcs == nil {
			svcs = []*registry.Service{}
		}
		return writeJSON(e.stdout, svcs)
	}
	if len(svcs) == 0 {
		fmt.Fprintf(e.stderr, "no services found in %s after %v\n", e.where(), time.Since(start).Round(time.Millisecond))
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tVERSION\tNODE\tADDRESS\tMETADATA")
	for _, s := range svcs {
		if len(s.Nodes) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t%s\n", printable(s.Name), printable(s.Version), formatMetadata(s.Metadata))
		}
		for _, n := range s.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(s.Name), printable(s.Version), printable(n.ID), printable(n.Address), formatMetadata(n.Metadata))
		}
	}
	return tw.Flush()
}

// sortServices orders services by name and version, and their nodes by
// ID, so that output is stable.
func sortServices(svcs []*registry.Service) {
	slices.SortFunc(svcs, func(a, b *registry.Service) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	for _, s := range svcs {
		slices.SortFunc(s.Nodes, func(a, b *registry.Node) int { return strings.Compare(a.ID, b.ID) })
	}
}

// formatMetadata renders md as sorted key=value pairs.
func formatMetadata(md map[string]string) string {
	if len(md) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(md)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", printable(k), printable(md[k]))
	}
	return b.String()
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

var watchCmd = &command{
	name:    "watch",
	args:    "[service]",
	summary: "print registry events as they happen, until interrupted or -timeout",
	help: `
Prints one line for each node the registry sees added, updated or removed,
of every service or only the one named, until interrupted (Ctrl-C) or
-timeout ends it; both end it with status 0. It says on standard error
when it has started watching. With -o json, prints one JSON object per
event: {"action":"create|update|delete","service":{...}}.
`,
	run: runWatch,
}

// watchWords are the words the text output uses for each action.
var watchWords = map[registry.Action]string{
	registry.Create: "added",
	registry.Update: "updated",
	registry.Delete: "removed",
}

func runWatch(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("want at most one service name, got %d arguments", len(args))
	}
	service := ""
	if len(args) == 1 {
		service = args[0]
	}
	r, err := e.registry()
	if err != nil {
		return err
	}
	w, err := r.Watch(ctx, service)
	if err != nil {
		return fmt.Errorf("watching %s: %w", e.where(), err)
	}
	defer w.Stop()
	what := "every service"
	if service != "" {
		what = fmt.Sprintf("service %q", service)
	}
	fmt.Fprintf(e.stderr, "watching %s in %s\n", what, e.where())
	for {
		res, err := w.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted or -timeout: the normal end
			}
			return fmt.Errorf("watching %s: %w", e.where(), err)
		}
		if err := printEvent(e, res); err != nil {
			return err
		}
	}
}

func printEvent(e *env, res *registry.Result) error {
	if e.output == "json" {
		return writeJSON(e.stdout, struct {
			Action  registry.Action   `json:"action"`
			Service *registry.Service `json:"service"`
		}{res.Action, res.Service})
	}
	s := res.Service
	word := watchWords[res.Action]
	if word == "" {
		word = string(res.Action)
	}
	if len(s.Nodes) == 0 {
		_, err := fmt.Fprintf(e.stdout, "%s %s %s\n", word, printable(s.Name), printable(s.Version))
		return err
	}
	for _, n := range s.Nodes {
		if _, err := fmt.Fprintf(e.stdout, "%s %s %s %s %s\n", word, printable(s.Name), printable(s.Version), printable(n.ID), printable(n.Address)); err != nil {
			return err
		}
	}
	return nil
}
