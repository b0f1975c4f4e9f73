package mdns

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DNS-SD names. Every node is an instance of one service type; the
// registry service name travels in the instance's TXT record.
const (
	domain      = "local." // the multicast DNS domain, RFC 6762 §3
	serviceType = "_micro._tcp"
	enumType    = "_services._dns-sd._udp"
	maxLabel    = 63 // bytes in a DNS label
)

// names are the fully qualified names of one registry's zone, in
// presentation format with a trailing dot.
type names struct {
	domain  string // "local."
	service string // "_micro._tcp.local."
	enum    string // "_services._dns-sd._udp.local."
}

func newNames(domain string) names {
	domain = strings.Trim(domain, ".") + "."
	return names{domain: domain, service: serviceType + "." + domain, enum: enumType + "." + domain}
}

// instance returns the instance name of a node. RFC 6763 §4.3 allows any
// UTF-8 in an instance label, so the node ID is used as it is, escaped,
// unless it is longer than a label may be; the ID itself travels in TXT, so
// shortening loses nothing.
func (n names) instance(nodeID string) string {
	return escapeLabel(shorten(nodeID, maxLabel)) + "." + n.service
}

// host returns the host name a node's SRV record points at. It is derived
// from the node ID, not the machine's name, so that every node owns its
// A/AAAA records and nodes with different addresses never contend for
// one host name. It keeps to letters, digits and hyphens, which every
// resolver accepts.
func (n names) host(nodeID string) string {
	mapped := []byte(nodeID)
	for i, c := range mapped {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			mapped[i] = '-'
		}
	}
	label := string(mapped)
	if label != nodeID || len(label) > maxLabel || label == "" || label[0] == '-' || label[len(label)-1] == '-' {
		// Changed by the mapping: a digest keeps distinct IDs distinct.
		prefix := strings.Trim(label, "-")
		prefix = strings.Trim(prefix[:min(len(prefix), maxLabel-9)], "-")
		if prefix == "" {
			prefix = "node"
		}
		label = prefix + "-" + digest(nodeID)
	}
	return label + "." + n.domain
}

// shorten returns s if it fits in max bytes, or a prefix cut at a rune
// boundary followed by "-" and a digest of s.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - 9
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "-" + digest(s)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// escapeLabel returns a label's bytes in DNS presentation format, escaped
// exactly as github.com/miekg/dns writes names it unpacks, so names built
// here compare equal to names read from the wire.
func escapeLabel(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '.' || c == ' ' || c == '\'' || c == '@' || c == ';' || c == '(' || c == ')' || c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			d := strconv.Itoa(int(c))
			b.WriteString(strings.Repeat("0", 3-len(d)) + d)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// key is the map key of a name: DNS names compare without regard to ASCII
// case.
func key(name string) string { return strings.ToLower(name) }
