package gateway

// HandshakeAddresses is how many addresses' buckets the gateway keeps (tests).
func (g *Gateway) HandshakeAddresses() int { return g.hs.size() }
