// Package chat is the wire contract of the chat service that every
// subprotocol answers: method and push names, their binary-raw method ids,
// and the typed params, results and push payloads.
//
// The types carry json tags, which the json-rpc and msgpack codecs use
// (MessagePack maps use the same keys). Each type also implements
// encoding.BinaryAppender and encoding.BinaryUnmarshaler with the byte layout
// given in protocols/binary-raw.md, which the binary-raw codec uses.
//
// The service itself lives in package gateway; this package has no logic
// beyond encoding, so clients in Go import it without the server.
package chat
