package etcd_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// server is an embedded etcd server on loopback.
type server struct {
	dir                string
	clientURL, peerURL url.URL
	e                  *embed.Etcd
	// With tlsInfo set, clients must speak TLS and present a certificate
	// the CA signed; clientTLS is such a client's configuration.
	tlsInfo   *transport.TLSInfo
	clientTLS *tls.Config
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newServer starts an etcd server on two free loopback ports with its data
// in dir.
func newServer(dir string) (*server, error) {
	return newServerTLS(dir, nil, nil)
}

// newServerTLS starts an etcd server like newServer that requires mutual
// TLS with info when it is not nil; clientTLS is what a client presents.
func newServerTLS(dir string, info *transport.TLSInfo, clientTLS *tls.Config) (*server, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if info != nil {
		scheme = "https"
	}
	s := &server{
		dir:       dir,
		clientURL: url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", cp)},
		peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)},
		tlsInfo:   info,
		clientTLS: clientTLS,
	}
	return s, s.start()
}

// start starts (or restarts) the server on its ports and data dir.
func (s *server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A fast heartbeat makes the election quick and etcd's shortest lease
	// TTL one second (1.5 election timeouts, rounded up).
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if s.tlsInfo != nil {
		cfg.ClientTLSInfo = *s.tlsInfo
	}
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
	// The server starts its client handlers after it reports ready; one
	// request waits for them, so that their goroutines exist before a
	// test's leak check starts counting.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.addr()}, DialTimeout: 5 * time.Second, TLS: s.clientTLS})
	if err != nil {
		e.Close()
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "warm-up"); err != nil {
		e.Close()
		return fmt.Errorf("etcd does not answer: %w", err)
	}
	return nil
}

// stop closes the server; with watches open that takes its grace period
// for requests (about 5 s), which the restart tests pay.
func (s *server) stop() {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

func (s *server) addr() string { return s.clientURL.Host }
