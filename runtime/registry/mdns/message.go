package mdns

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"
)

// message is a received packet, parsed record by record.
type message struct {
	id        uint16
	response  bool
	truncated bool
	questions []dns.Question
	// records are the answer, authority and additional records in order,
	// less those that failed to parse.
	records []dns.RR
	// skipped counts records that failed to parse.
	skipped int
}

var errNotMDNS = errors.New("not a standard query or response")

// parseMessage parses a packet leniently. (*dns.Msg).Unpack rejects a
// whole packet when one record is malformed (python-zeroconf 0.47, for
// one, writes NSEC records it cannot read back); here a record whose data
// fails to parse is skipped by its RDLENGTH and the rest are kept. Only a
// broken header, question or record name, which leave no way to find
// what follows, end parsing early; what was read so far is returned.
func parseMessage(b []byte) (*message, error) {
	if len(b) < 12 {
		return nil, errors.New("short packet")
	}
	flags := binary.BigEndian.Uint16(b[2:])
	m := &message{
		id:        binary.BigEndian.Uint16(b[0:]),
		response:  flags&(1<<15) != 0,
		truncated: flags&(1<<9) != 0,
	}
	// RFC 6762 §18.3 and §18.11: other opcodes and non-zero response codes
	// are silently ignored.
	if opcode, rcode := flags>>11&0xf, flags&0xf; opcode != 0 || rcode != 0 {
		return nil, errNotMDNS
	}
	qd := int(binary.BigEndian.Uint16(b[4:]))
	rrs := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	off := 12
	for range qd {
		name, next, err := dns.UnpackDomainName(b, off)
		if err != nil || next+4 > len(b) {
			return m, errors.New("malformed question")
		}
		m.questions = append(m.questions, dns.Question{
			Name:   name,
			Qtype:  binary.BigEndian.Uint16(b[next:]),
			Qclass: binary.BigEndian.Uint16(b[next+2:]),
		})
		off = next + 4
	}
	for range rrs {
		name, next, err := dns.UnpackDomainName(b, off)
		if err != nil || next+10 > len(b) {
			return m, errors.New("malformed record name")
		}
		h := dns.RR_Header{
			Name:     name,
			Rrtype:   binary.BigEndian.Uint16(b[next:]),
			Class:    binary.BigEndian.Uint16(b[next+2:]),
			Ttl:      binary.BigEndian.Uint32(b[next+4:]),
			Rdlength: binary.BigEndian.Uint16(b[next+8:]),
		}
		end := next + 10 + int(h.Rdlength)
		if end > len(b) {
			return m, errors.New("record data beyond the packet")
		}
		// The slice ends at the record, so its data cannot be read past
		// RDLENGTH; compression pointers only point back.
		rr, _, err := dns.UnpackRRWithHeader(h, b[:end], next+10)
		if err != nil || rr == nil {
			m.skipped++
		} else {
			m.records = append(m.records, rr)
		}
		off = end
	}
	return m, nil
}
