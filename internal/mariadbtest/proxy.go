package mariadbtest

import (
	"net"
	"sync"
	"testing"
)

// Proxy stands between a bridge and the server, so a test can cut the
// bridge off from the database the way a network partition does: the
// connections stay open and the bytes stop flowing, so the bridge sees
// its statements hang until its own deadlines give up.
type Proxy struct {
	Addr string
	to   string
	l    net.Listener

	mu    sync.Mutex
	cut   bool
	wake  chan struct{} // closed when the cut is lifted
	conns []net.Conn
}

// NewProxy forwards a loopback address to to; it is closed with the test.
func NewProxy(t testing.TB, to string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), to: to, l: l, wake: make(chan struct{})}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Cut stops the traffic (true) or lets it flow again (false).
func (p *Proxy) Cut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cut == p.cut {
		return
	}
	p.cut = cut
	if !cut {
		close(p.wake)
		p.wake = make(chan struct{})
	}
}

// gate blocks while the traffic is cut.
func (p *Proxy) gate() {
	for {
		p.mu.Lock()
		cut, wake := p.cut, p.wake
		p.mu.Unlock()
		if !cut {
			return
		}
		<-wake
	}
}

func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	p.gate()
	s, err := net.Dial("tcp", p.to)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	pump := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.gate()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go pump(s, c)
	go pump(c, s)
}

func (p *Proxy) close() {
	p.l.Close()
	p.Cut(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
