package networking

import "github.com/nosecone/nscn/networking/netflag"

// Net is one network asked for with --net (see netflag.Net).
type Net = netflag.Net

// Nets is a parsed --net value (see netflag.Nets).
type Nets = netflag.Nets

// ParseNets reads the --net value as rkt does; see netflag.Parse.
func ParseNets(s string) (Nets, error) { return netflag.Parse(s) }
