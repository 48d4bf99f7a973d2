package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// forward is the request's way to a plain-HTTP upstream at the root of
// its address (pg-backup-api's case), without httputil.ReverseProxy: the
// outgoing request is written straight from the incoming one, through the
// same filter rewrite applies (identity claims, hop-by-hop and
// Connection-listed headers, Expect, Idempotency-Key for operations
// dropped; X-Forwarded-For/Host/Proto and the client's name set), so no
// header map, request or URL is cloned. The answer goes back as
// ReverseProxy would send it: hop-by-hop headers dropped, 1xx answers
// passed on, the same modifyResponse (Location, buffering, audit, write
// deadline) and the same upstreamError answers; a copy that fails half
// way aborts the client connection (http.ErrAbortHandler), so a cut
// answer never looks complete. Trailers are not passed on (pg-backup-api
// sends none).
func (h *handler) forward(w *recorder, r *http.Request, ex *exchange, body []byte) {
	ex.h, ex.w, ex.r, ex.body = h, w, r, body
	replayable := isIdempotent(r.Method) && len(body) == 0
	resp, err := h.lean.exchange(r, replayable, ex)
	if err != nil {
		h.upstreamError(w, r, err)
		return
	}
	if err := h.finishAnswer(resp, ex); err != nil {
		resp.Body.Close()
		h.upstreamError(w, r, err)
		return
	}
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	dst := w.Header()
	for k, vv := range resp.Header {
		if len(dst[k]) == 0 {
			dst[k] = vv // resp.Header is ours and read no more: no copy
		} else {
			dst[k] = append(dst[k], vv...)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if ex.answer != nil {
		if _, err := w.Write(*ex.answer); err != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				panic(http.ErrAbortHandler)
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			h.log.Warn("pg-backup-api's answer broke off while streaming", "path", cut(r.URL.Path), "err", rerr)
			panic(http.ErrAbortHandler)
		}
	}
}

// writeRequest writes the upstream request (ex is the outgoing request of
// forward): request line, Host, the client's headers that may pass, what
// the proxy states, and the body. Write errors show at Flush.
func (ex *exchange) writeRequest(bw *bufio.Writer) error {
	h, r, body := ex.h, ex.r, ex.body
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(h.upstream.Host)
	bw.WriteString("\r\n")
	idempotent := isIdempotent(r.Method)
	conn := r.Header["Connection"]
	for name, values := range r.Header {
		if !passes(name, conn, idempotent) {
			continue
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				continue // net/http refuses these already; never forwarded
			}
			bw.WriteString(name)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		writeHeader(bw, "X-Forwarded-For", ip)
	}
	writeHeader(bw, "X-Forwarded-Host", r.Host)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	writeHeader(bw, "X-Forwarded-Proto", proto)
	writeHeader(bw, ClientHeader, ex.id.Name)
	if len(body) > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], int64(len(body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(body)
	return nil
}

// informational passes a 1xx answer on to the client, as ReverseProxy
// does.
func (ex *exchange) informational(code int, header textproto.MIMEHeader) error {
	dst := ex.w.Header()
	for k, vv := range header {
		dst[k] = append(dst[k], vv...)
	}
	ex.w.WriteHeader(code)
	clear(dst)
	return nil
}

func writeHeader(bw *bufio.Writer, name, value string) {
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}

// hopByHop are the headers of one connection (RFC 9110 7.6.1), never
// forwarded either way, as ReverseProxy drops them; plus what the proxy
// frames itself (Content-Length, Host) on the way up.
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// passes reports whether a client's request header goes to the upstream:
// the same filter as rewrite plus ReverseProxy's hop-by-hop rules.
func passes(name string, conn []string, idempotent bool) bool {
	switch {
	case hopByHop[name], name == "Content-Length", name == "Host", name == "Expect", spoofable(name), listedIn(conn, name):
		return false
	case !idempotent && (name == "Idempotency-Key" || name == "X-Idempotency-Key"):
		// These would let a client library resend an operation.
		return false
	}
	return true
}

// listedIn reports whether name is one of the Connection header's tokens.
func listedIn(conn []string, name string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// removeHopByHop drops an answer's hop-by-hop headers and those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = textproto.TrimString(tok); tok != "" {
				h.Del(tok)
			}
		}
	}
	for name := range hopByHop {
		delete(h, name)
	}
}
