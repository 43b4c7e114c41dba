package mesh

// MaxPendingRequests returns how many requests this node may have in
// flight at once, over all peers and applications (Config's
// MaxPendingRequests); users of the mesh size their own per-peer bounds
// from it.
func (m *Mesh) MaxPendingRequests() int { return cap(m.pending) }
