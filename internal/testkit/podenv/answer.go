package podenv

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Creds is what the container endpoint serves (PROTOCOL.md §1).
type Creds struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      time.Time
	AccountID       string `json:"AccountId"`
	RoleARN         string `json:"RoleArn"`
}

// Digest is what client scripts compare their credentials with (EXPECT_CREDS_SHA256), so they
// can say whether they got the served ones without printing a secret.
func (c Creds) Digest() string {
	sum := sha256.Sum256([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey + "\n" + c.Token))
	return hex.EncodeToString(sum[:])
}

// Answer is one response of the credentials endpoint.
type Answer struct {
	Status int
	Body   []byte
	// Creds are the credentials of a 200 answer.
	Creds Creds
	// Code is an error answer's code (e.g. CredentialsUnavailable).
	Code string
}

// Get asks the credentials endpoint at url once, as an SDK does. It is safe to call from any
// goroutine; an answer that is not JSON is an error.
func Get(client *http.Client, url, auth string) (*Answer, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	a := &Answer{Status: resp.StatusCode}
	if a.Body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return nil, fmt.Errorf("answer %d has Content-Type %q", a.Status, ct)
	}
	var body struct {
		Creds
		Code string `json:"Code"`
	}
	if err := json.Unmarshal(a.Body, &body); err != nil {
		return nil, fmt.Errorf("answer %d is not JSON: %w", a.Status, err)
	}
	a.Creds, a.Code = body.Creds, body.Code
	return a, nil
}
