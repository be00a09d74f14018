module github.com/subgate/subgate

go 1.26.8

require (
	github.com/gobwas/ws v1.5.0
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/sourcegraph/jsonrpc2 v0.2.3
	github.com/vmihailenco/msgpack/v5 v5.4.1
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)
