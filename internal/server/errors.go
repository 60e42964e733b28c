package server

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiError is an error answer, encoded once when its handler is built.
type apiError struct {
	status int
	body   []byte
	length []string // the Content-Length header's value
}

// newAPIError encodes the body with both casings of the keys: the Java SDK reads "code" and
// "message", the JavaScript SDK "Code" and "Message", Go either.
func newAPIError(status int, code, message string) *apiError {
	body, err := json.Marshal(struct {
		LowerCode    string `json:"code"`
		LowerMessage string `json:"message"`
		Code         string `json:"Code"`
		Message      string `json:"Message"`
	}{code, message, code, message})
	if err != nil {
		panic("server: encode error body: " + err.Error()) // plain strings always encode
	}
	return &apiError{status: status, body: body, length: []string{strconv.Itoa(len(body))}}
}

const (
	unavailableCode    = "CredentialsUnavailable"
	unavailableMessage = "no valid credentials: the first STS call has not returned, or STS is failing and the " +
		"cached credentials are too close to expiry; see the sidecar's logs"
)

// errorAnswers are the credentials endpoint's error answers.
type errorAnswers struct {
	missingAuth, badAuth, notFound, method, unavailable *apiError
}

func newErrorAnswers() errorAnswers {
	return errorAnswers{
		missingAuth: newAPIError(http.StatusUnauthorized, "Unauthorized",
			"missing Authorization header: send the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
		badAuth: newAPIError(http.StatusUnauthorized, "Unauthorized",
			"Authorization header does not match the sidecar's auth token"),
		notFound: newAPIError(http.StatusNotFound, "NotFound",
			"no such path: credentials are served at /v1/credentials"),
		method:      newAPIError(http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET is allowed"),
		unavailable: newAPIError(http.StatusServiceUnavailable, unavailableCode, unavailableMessage),
	}
}

// internalError is built when needed: only a panic, which should never happen, sends it.
func internalError() *apiError {
	return newAPIError(http.StatusInternalServerError, "InternalError", "internal error in the sidecar; see its logs")
}

// writeError sends e, with the shared header values of credentials.go: a client sending a
// wrong token can repeat it as fast as a right one.
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Content-Length"] = e.length
	h["Cache-Control"] = headerNoStore
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}
