package events

func childMain() bool { return false }
