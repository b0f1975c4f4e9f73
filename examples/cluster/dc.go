package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// dataCentre runs an embedded etcd (client port 2379 on -address) and an
// embedded nats-server with JetStream (port 4222), their data under -dir.
// The line "restart-etcd" on standard input stops etcd and starts it again
// on the same data; SIGTERM, SIGINT or the end of standard input stops both.
func dataCentre(args []string) error {
	fs := flag.NewFlagSet("dc", flag.ExitOnError)
	addr := fs.String("address", "127.0.0.1", "IP address etcd and NATS listen on")
	dir := fs.String("dir", "", "folder for their data (required)")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	e := &etcdServer{
		dir:    filepath.Join(*dir, "etcd"),
		client: url.URL{Scheme: "http", Host: net.JoinHostPort(*addr, "2379")},
		// The peer port serves no one else: a single member.
		peer: url.URL{Scheme: "http", Host: "127.0.0.1:2380"},
	}
	if err := e.start(); err != nil {
		return err
	}
	defer e.stop()
	fmt.Printf("dc: etcd serving on %s\n", e.client.Host)

	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: *addr, Port: 4222, JetStream: true, StoreDir: filepath.Join(*dir, "nats"), NoLog: true, NoSigs: true,
	})
	if err != nil {
		return err
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats-server did not start within 10s")
	}
	fmt.Printf("dc: nats (JetStream) serving on %s\n", ns.ClientURL())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("dc: stopping etcd and nats")
			return nil
		case line, ok := <-lines:
			if !ok {
				fmt.Println("dc: stopping etcd and nats")
				return nil
			}
			if line != "restart-etcd" {
				fmt.Printf("dc: unknown command %q\n", line)
				continue
			}
			fmt.Println("dc: stopping etcd")
			t := time.Now()
			e.stop()
			fmt.Printf("dc: etcd stopped after %.1fs\n", time.Since(t).Seconds())
			if err := e.start(); err != nil {
				return err
			}
			fmt.Printf("dc: etcd serving again on %s, %.1fs after stopping began\n", e.client.Host, time.Since(t).Seconds())
		}
	}
}

// etcdServer is a single-member embedded etcd that can be restarted on
// its data.
type etcdServer struct {
	dir          string
	client, peer url.URL
	e            *embed.Etcd
}

func (s *etcdServer) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "dc"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.client}
	cfg.AdvertiseClientUrls = []url.URL{s.client}
	cfg.ListenPeerUrls = []url.URL{s.peer}
	cfg.AdvertisePeerUrls = []url.URL{s.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A fast heartbeat makes the election after a restart quick.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		return fmt.Errorf("etcd did not become ready within 20s")
	}
	s.e = e
	// Ready is reported before the client handlers run; one request
	// waits for them.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.client.Host}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "warm-up"); err != nil {
		return fmt.Errorf("etcd does not answer: %w", err)
	}
	return nil
}

func (s *etcdServer) stop() {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}
