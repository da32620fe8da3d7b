// Dial: opens a TCP connection, optionally from a chosen source address.
//
// A node binds its outgoing connections to the address it listens on, as Cassandra does with
// its listen_address: peers (and firewall rules, such as the partition suite's) then see every
// connection a node opens coming from that node's own address rather than from whatever
// address the kernel picks (127.0.0.1 for every 127.0.0.0/8 destination on loopback).
//
// Called on the thread that owns the KJ event loop of `io`.
#pragma once

#include <kj/async-io.h>

#include <string>

namespace kv::rpc {

// Connects to `host_port`. With an empty `source_host` (or 0.0.0.0) the kernel chooses the
// source address; otherwise both hosts must be IPv4 literals, and the socket is bound to
// `source_host` (any port) before it connects. Fails (a rejected promise) with a description
// when an address is malformed or the connection cannot be made.
kj::Promise<kj::Own<kj::AsyncIoStream>> Dial(kj::AsyncIoProvider& provider,
                                             kj::LowLevelAsyncIoProvider& low_level,
                                             const std::string& host_port,
                                             const std::string& source_host);

// The host part of `listen` ("HOST:PORT") when it names one IPv4 address, else "" (a wildcard
// such as 0.0.0.0, or a name): what a node binds its outgoing connections to.
std::string SourceHostOf(const std::string& listen);

}  // namespace kv::rpc
