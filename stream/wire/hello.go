package wire

// StartLive asks the camera to start at its current group (protocol.md
// §3.1). It is also what an empty or unknown start means.
const StartLive = "live"

// Hello is the viewer's first message on the control stream (protocol.md
// §3.1).
type Hello struct {
	Version  uint64
	Software string // viewer software name and version, for logs
	Start    string // requested start; "" means StartLive
}

// Type returns TypeHello.
func (*Hello) Type() MessageType { return TypeHello }

func (m *Hello) appendPayload(e *encoder) {
	e.varint(m.Version)
	e.text(m.Software, MaxNameLen, "HELLO software")
	if m.Start != "" {
		e.text(m.Start, MaxNameLen, "HELLO start")
	}
}

func parseHello(d *decoder) *Hello {
	m := &Hello{Version: d.varint(), Software: d.text(MaxNameLen, "HELLO software")}
	if d.more() {
		m.Start = d.text(MaxNameLen, "HELLO start")
	}
	return m
}
