package wsgate

// Handler is the application's side of a connection: the seed's "business loop", without a
// goroutine of its own. For one connection the calls are sequential and ordered: OnOpen first,
// then OnMessage for each message in arrival order, then OnClose exactly once, after the last
// OnMessage has returned. Different connections are handled concurrently.
//
// A handler that blocks holds up its own connection only (its reads stop, and with them its
// heartbeat answers), never anyone else's. Messages queued for a connection while its OnOpen or
// OnMessage runs, by the handler or by any other goroutine, are written when the callback returns,
// in one batch by the reader goroutine (as a hand-written read loop would): keep callbacks short,
// and hand long work to a goroutine of your own. A panic is recovered, logged, and closes the connection
// with 1011; the server keeps running.
type Handler interface {
	// OnOpen is called once the connection is upgraded, before any message.
	OnOpen(c *Conn)
	// OnMessage is called for every complete data message. m.Data is valid until it returns.
	// Messages that arrive after the connection started closing are not delivered.
	OnMessage(c *Conn, m Message)
	// OnClose is called once, when the connection has ended; err is a *CloseError saying why.
	OnClose(c *Conn, err error)
}

// HandlerFunc turns a function into a Handler that only handles messages.
type HandlerFunc func(c *Conn, m Message)

func (HandlerFunc) OnOpen(*Conn)                   {}
func (f HandlerFunc) OnMessage(c *Conn, m Message) { f(c, m) }
func (HandlerFunc) OnClose(*Conn, error)           {}
