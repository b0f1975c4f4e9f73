// Command cluster plays each part of the cluster demo (see ./demo): the
// data centre, a greeter server, a subscriber, a client, or the micro
// command with the etcd and NATS plug-ins. Discovery is
// etcd and events go through NATS JetStream; nothing sends multicast.
//
//	cluster dc -address 10.77.0.1 -dir /tmp/dc
//	MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS=10.77.0.1:2379 cluster server -address 10.77.1.2:0 -instance greeter-1
//	MICRO_BROKER_ADDRESS=nats://10.77.0.1:4222 cluster subscriber -instance auditor
//	MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS=10.77.0.1:2379 MICRO_BROKER_ADDRESS=nats://10.77.0.1:4222 cluster client
//	MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS=10.77.0.1:2379 cluster micro services
//
// The data centre, the subscriber and the client read commands, one a
// line, on standard input (see each part's function).
package main

import (
	"fmt"
	"os"
)

// topic is where the client publishes events: under the JetStream prefix
// "events", so it is stored and its queue group is a durable consumer.
const (
	jetStreamPrefix = "events"
	topic           = "events.greeted"
	queue           = "auditors"
)

func main() {
	parts := map[string]func([]string) error{
		"dc": dataCentre, "server": server, "subscriber": subscriber, "client": client, "micro": micro,
	}
	if len(os.Args) < 2 || parts[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: cluster dc|server|subscriber|client|micro [flags]")
		os.Exit(2)
	}
	if err := parts[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "cluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
