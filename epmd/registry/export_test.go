package registry

// Corrupt damages g's internal structure in one of the ways CheckInvariants
// must notice, so that the external tests can show that it does. It exists
// only in test builds. g must hold at least two registered nodes and one
// remembered record.
func Corrupt(g *Registry, how string) {
	switch how {
	case "shared record":
		g.old.head = g.live.head
	case "back link":
		g.live.head.next.prev = nil
	case "live flag":
		g.live.head.live = false
	case "not indexed":
		delete(g.byName, g.live.head.Name)
	case "creation":
		g.live.head.Creation = minCreation - 1
	case "tail":
		g.live.tail = g.live.head
	case "count":
		g.live.n++
	case "remembered count":
		g.old.n--
	case "stray index entry":
		g.byName["stray"] = &record{}
	default:
		panic("registry.Corrupt: unknown damage " + how)
	}
}
