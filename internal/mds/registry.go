package mds

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/nosecone/nscn/internal/errdefs"
)

// tokenSum is the SHA-256 of a token. The registry keys pods by it, so that
// it holds no token and a lookup's timing says nothing about a token's
// prefix.
type tokenSum [sha256.Size]byte

func sumToken(tok string) tokenSum { return sha256.Sum256([]byte(tok)) }

// registry holds the registered pods. It is safe for concurrent use.
type registry struct {
	mu      sync.RWMutex
	byUUID  map[string]*pod
	byToken map[tokenSum]*pod
	byIP    map[netip.Addr]*pod // every pod's addresses, with or without a token
}

func newRegistry() *registry {
	return &registry{
		byUUID:  map[string]*pod{},
		byToken: map[tokenSum]*pod{},
		byIP:    map[netip.Addr]*pod{},
	}
}

// add registers r, giving it a fresh HMAC key. A pod whose UUID, token or
// any address is already registered is refused (AlreadyExists): addresses
// must identify at most one pod.
func (g *registry) add(r Registration) (*pod, error) {
	p, err := validate(&r)
	if err != nil {
		return nil, err
	}
	p.key = make([]byte, hmacKeyBytes)
	if _, err := rand.Read(p.key); err != nil {
		return nil, fmt.Errorf("generate hmac key of pod %s: %w", p.uuid, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.byUUID[p.uuid]; ok {
		return nil, errdefs.AlreadyExists("pod %s is already registered", p.uuid)
	}
	if p.hasToken {
		if _, ok := g.byToken[p.tokenSum]; ok {
			return nil, errdefs.AlreadyExists("pod %s: its token is already registered for another pod", p.uuid)
		}
	}
	for _, ip := range p.ips {
		if o, ok := g.byIP[ip]; ok {
			return nil, errdefs.AlreadyExists("pod %s: address %s is already registered for pod %s", p.uuid, ip, o.uuid)
		}
	}
	g.byUUID[p.uuid] = p
	if p.hasToken {
		g.byToken[p.tokenSum] = p
	}
	for _, ip := range p.ips {
		g.byIP[ip] = p
	}
	return p, nil
}

// remove unregisters the pod with the canonical UUID u.
func (g *registry) remove(u string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.byUUID[u]
	if !ok {
		return errdefs.NotFound("pod %s is not registered", u)
	}
	delete(g.byUUID, u)
	if p.hasToken {
		delete(g.byToken, p.tokenSum)
	}
	for _, ip := range p.ips {
		delete(g.byIP, ip)
	}
	return nil
}

// get returns the pod with the canonical UUID u, or nil.
func (g *registry) get(u string) *pod {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.byUUID[u]
}

// identify returns the pod a request with token tok (empty if the URL had
// none) from address src comes from, or nil if it fits no pod:
//
//   - with a token, the pod holding it, if the request comes from one of the
//     pod's addresses (any address for a pod registered without one);
//   - without a token, the pod holding address src, if that pod has no token
//     (a pod given a token must use it).
func (g *registry) identify(tok string, src netip.Addr) *pod {
	src = src.Unmap().WithZone("")
	g.mu.RLock()
	defer g.mu.RUnlock()
	if tok != "" {
		p := g.byToken[sumToken(tok)]
		if p == nil || (len(p.ips) > 0 && !slices.Contains(p.ips, src)) {
			return nil
		}
		return p
	}
	p := g.byIP[src]
	if p == nil || p.hasToken {
		return nil
	}
	return p
}
