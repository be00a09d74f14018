package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/subgate/subgate/gateway"
)

// runToken prints an HS256 token that proves a client id to a gateway
// started with the same -jwt-secret.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the client id the token proves (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	secret := fs.String("secret", "", "HS256 secret (default $SUBGATE_JWT_SECRET, which keeps it out of the process list)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *secret == "" {
		*secret = os.Getenv("SUBGATE_JWT_SECRET")
	}
	tok, err := signToken(*sub, *ttl, *secret)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, "subgate token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// signToken checks the settings and signs {sub, iat, exp}.
func signToken(sub string, ttl time.Duration, secret string) (string, error) {
	switch {
	case !gateway.ValidID(sub):
		return "", errors.New("-sub must be a client id: 1-64 characters of [A-Za-z0-9._-]")
	case ttl < time.Second:
		return "", errors.New("-ttl must be at least 1s (exp counts whole seconds)")
	case secret == "":
		return "", errors.New("no secret: set SUBGATE_JWT_SECRET or -secret")
	case len(secret) < gateway.MinJWTSecret:
		return "", fmt.Errorf("the secret must be at least %d bytes", gateway.MinJWTSecret)
	}
	now := time.Now()
	claims := jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}
