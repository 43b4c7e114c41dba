package consul

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// The JSON shapes the fake agent reads and writes, with the field names of
// Consul's HTTP API (decoded and encoded independently of the api
// package's own types, so the fake does not just mirror the client).

// wireCheckDef is a check in a service registration.
type wireCheckDef struct {
	CheckID, Name, TTL, Status, Notes string
	DeregisterCriticalServiceAfter    string
	HTTP, TCP, GRPC, Interval         string
}

// wireRegistration is the body of PUT /v1/agent/service/register.
type wireRegistration struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	Check             *wireCheckDef
	Checks            []*wireCheckDef
}

// wireEntry is one element of the health endpoint's answer.
type wireEntry struct {
	Node    wireNode
	Service wireService
	Checks  []wireCheck
}

type wireNode struct {
	ID, Node, Address, Datacenter string
	TaggedAddresses               map[string]string
	Meta                          map[string]string
	CreateIndex, ModifyIndex      uint64
}

type wireServiceAddress struct {
	Address string
	Port    int
}

type wireService struct {
	ID, Service              string
	Tags                     []string
	Address                  string
	TaggedAddresses          map[string]wireServiceAddress
	Meta                     map[string]string
	Port                     int
	Weights                  struct{ Passing, Warning int }
	EnableTagOverride        bool
	CreateIndex, ModifyIndex uint64
}

type wireCheck struct {
	Node, CheckID, Name, Status, Notes, Output string
	ServiceID, ServiceName                     string
	ServiceTags                                []string
	Type                                       string
	CreateIndex, ModifyIndex                   uint64
}

func writeHealth(w http.ResponseWriter, idx uint64, entries []wireEntry) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	_ = json.NewEncoder(w).Encode(entries)
}
