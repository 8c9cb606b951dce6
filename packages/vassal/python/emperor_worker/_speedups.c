/*
 * emperor_worker._speedups: the Python worker's per-request hot path in C (optional).
 *
 * Built by scripts/build-speedups.mjs (`npm run build`) for each Python it finds; the
 * worker imports it when present and EMPEROR_PY_SPEEDUPS is not 0, else it runs the
 * pure-Python code these functions mirror (see speedups.py). Standard C library and the
 * Python C API only.
 *
 *   accept_read(listen_fd)      accept4 + the first non-waiting read, one call
 *                               (server.Server.accept's _accept + preadv2 RWF_NOWAIT)
 *   uwsgi_environ(buf, end)     a uwsgi packet's variable block as the environ, with
 *                               uWSGI's defaults and wsgi.url_scheme
 *                               (protocols/uwsgi.py parse_vars + read_request)
 *
 * Semantics are the Python code's; the tests run the parser tests against both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Bytes asked of the kernel by the first read (connection.RECV_SIZE). */
#define RECV_SIZE (64 * 1024)
static char recv_buf[RECV_SIZE]; /* used with the GIL held only */

/* -- interned keys ------------------------------------------------------------- */

/* Key strings seen, by a hash of their bytes: a front end sends the same keys again and
 * again, so each request's keys are the same str objects (hash computed once). Values are
 * decoded per request. Bounded: a slot is replaced when another key hashes to it. */
#define KEYS 512
static PyObject *keys[KEYS];

static PyObject *key_str(const unsigned char *p, Py_ssize_t n)
{
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    PyObject **slot = &keys[h & (KEYS - 1)];
    PyObject *k = *slot;
    if (k != NULL && PyUnicode_GET_LENGTH(k) == n && memcmp(PyUnicode_1BYTE_DATA(k), p, (size_t)n) == 0) {
        Py_INCREF(k);
        return k;
    }
    k = PyUnicode_DecodeLatin1((const char *)p, n, NULL);
    if (k == NULL)
        return NULL;
    if (PyUnicode_KIND(k) != PyUnicode_1BYTE_KIND) /* cannot happen for latin-1; keep the check honest */
        return k;
    PyUnicode_InternInPlace(&k);
    Py_XSETREF(*slot, k);
    Py_INCREF(k);
    return k;
}

/* -- accept_read ----------------------------------------------------------------- */

/* The peer address as socket.accept() gives it (CPython's makesockaddr): (host, port)
 * for IPv4, (host, port, flowinfo, scope_id) for IPv6, the path (str; bytes when
 * abstract) for a Unix socket, None for another family. */
static PyObject *peer_of(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port), (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        Py_ssize_t n = (Py_ssize_t)len - (Py_ssize_t)offsetof(struct sockaddr_un, sun_path);
        if (n > 0 && a->sun_path[0] == 0)
            return PyBytes_FromStringAndSize(a->sun_path, n); /* abstract namespace */
        if (n < 0)
            n = 0;
        Py_ssize_t end = 0;
        while (end < n && a->sun_path[end])
            end++;
        return PyUnicode_DecodeFSDefaultAndSize(a->sun_path, end);
    }
    default:
        Py_RETURN_NONE;
    }
}

PyDoc_STRVAR(accept_read_doc,
"accept_read(listen_fd) -> None | (fd, peer, data)\n\n"
"Takes one connection from the non-blocking listening socket listen_fd (accept4,\n"
"close-on-exec; the new fd is blocking with the listener's kernel timeouts) and reads\n"
"what is already there without waiting (recv MSG_DONTWAIT, up to 64 KiB).\n"
"None: no connection was waiting (EAGAIN or EINTR). peer: as socket.accept() gives it.\n"
"data: a bytearray of what came; None when nothing came yet; b\"\" at EOF or when the\n"
"read failed (the connection is to be closed).\n"
"Raises OSError when accept4 fails otherwise (EMFILE...).");

static PyObject *accept_read(PyObject *self, PyObject *arg)
{
    (void)self;
    long lfd = PyLong_AsLong(arg);
    if (lfd == -1 && PyErr_Occurred())
        return NULL;
    if (lfd < 0 || lfd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "accept_read: not a file descriptor");
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    int fd = accept4((int)lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            Py_RETURN_NONE;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *peer = peer_of(&ss, len);
    if (peer == NULL) {
        close(fd);
        return NULL;
    }
    PyObject *data;
    ssize_t n = recv(fd, recv_buf, RECV_SIZE, MSG_DONTWAIT);
    if (n > 0) {
        data = PyByteArray_FromStringAndSize(recv_buf, (Py_ssize_t)n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        data = Py_None;
        Py_INCREF(data);
    } else {
        data = PyBytes_FromStringAndSize(NULL, 0);
    }
    if (data == NULL) {
        Py_DECREF(peer);
        close(fd);
        return NULL;
    }
    PyObject *fdo = PyLong_FromLong(fd);
    if (fdo == NULL) {
        Py_DECREF(peer);
        Py_DECREF(data);
        close(fd);
        return NULL;
    }
    PyObject *t = PyTuple_New(3);
    if (t == NULL) {
        Py_DECREF(fdo);
        Py_DECREF(peer);
        Py_DECREF(data);
        close(fd);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, fdo);
    PyTuple_SET_ITEM(t, 1, peer);
    PyTuple_SET_ITEM(t, 2, data);
    return t;
}

/* -- uwsgi_environ ----------------------------------------------------------------- */

static PyObject *s_script_name, *s_path_info, *s_query_string, *s_request_method, *s_server_protocol, *s_https,
    *s_request_scheme, *s_uwsgi_scheme, *s_url_scheme, *s_empty, *s_get, *s_http10, *s_http, *s_https_v;

/* Whether the str value v equals the ASCII word w, ignoring ASCII case (str.lower() ==
 * w for a latin-1 str: no latin-1 letter outside ASCII lowers to an ASCII one). */
static int word_is(PyObject *v, const char *w)
{
    if (v == NULL || !PyUnicode_Check(v) || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND)
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if ((size_t)n != strlen(w))
        return 0;
    const unsigned char *p = PyUnicode_1BYTE_DATA(v);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)w[i])
            return 0;
    }
    return 1;
}

static int set_default(PyObject *env, PyObject *key, PyObject *value)
{
    int has = PyDict_Contains(env, key);
    if (has < 0)
        return -1;
    return has ? 0 : PyDict_SetItem(env, key, value);
}

PyDoc_STRVAR(uwsgi_environ_doc,
"uwsgi_environ(packet, end) -> dict | None\n\n"
"The variable block packet[4:end] of a uwsgi packet (a bytes-like object) as the\n"
"environ: keys and values latin-1, a repeated key keeps its last value; uWSGI's\n"
"defaults for SCRIPT_NAME, PATH_INFO, QUERY_STRING, REQUEST_METHOD and SERVER_PROTOCOL;\n"
"wsgi.url_scheme from HTTPS, REQUEST_SCHEME or UWSGI_SCHEME. None when the block does\n"
"not parse (a null key, or a length running past the block): the caller words the\n"
"error (protocols/uwsgi.py block_error), as for the Python parser.");

static PyObject *uwsgi_environ(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t end;
    if (!PyArg_ParseTuple(args, "y*n", &view, &end))
        return NULL;
    if (end < 4 || end > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "uwsgi_environ: end out of the packet");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)view.buf;
    Py_ssize_t pos = 4;
    PyObject *env = PyDict_New();
    if (env == NULL)
        goto fail;
    while (pos < end) {
        if (pos + 2 > end)
            goto malformed;
        Py_ssize_t klen = p[pos] | p[pos + 1] << 8;
        Py_ssize_t kstart = pos + 2;
        if (klen == 0 || kstart + klen + 2 > end)
            goto malformed;
        Py_ssize_t vlenpos = kstart + klen;
        Py_ssize_t vlen = p[vlenpos] | p[vlenpos + 1] << 8;
        Py_ssize_t vstart = vlenpos + 2;
        if (vstart + vlen > end)
            goto malformed;
        PyObject *k = key_str(p + kstart, klen);
        if (k == NULL)
            goto fail;
        PyObject *v = vlen ? PyUnicode_DecodeLatin1((const char *)p + vstart, vlen, NULL) : (Py_INCREF(s_empty), s_empty);
        if (v == NULL) {
            Py_DECREF(k);
            goto fail;
        }
        int r = PyDict_SetItem(env, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (r < 0)
            goto fail;
        pos = vstart + vlen;
    }
    PyBuffer_Release(&view);
    if (set_default(env, s_script_name, s_empty) < 0 || set_default(env, s_path_info, s_empty) < 0 ||
        set_default(env, s_query_string, s_empty) < 0 || set_default(env, s_request_method, s_get) < 0 ||
        set_default(env, s_server_protocol, s_http10) < 0) {
        Py_DECREF(env);
        return NULL;
    }
    /* protocols/uwsgi.py read_request: HTTPS on or 1, or the scheme https, makes it https. */
    PyObject *https = PyDict_GetItemWithError(env, s_https);
    if (https == NULL && PyErr_Occurred()) {
        Py_DECREF(env);
        return NULL;
    }
    PyObject *scheme = PyDict_GetItemWithError(env, s_request_scheme);
    if (scheme == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(env);
            return NULL;
        }
        scheme = PyDict_GetItemWithError(env, s_uwsgi_scheme);
        if (scheme == NULL && PyErr_Occurred()) {
            Py_DECREF(env);
            return NULL;
        }
    }
    int is_https = word_is(https, "on") || word_is(https, "1") || word_is(scheme, "https");
    if (PyDict_SetItem(env, s_url_scheme, is_https ? s_https_v : s_http) < 0) {
        Py_DECREF(env);
        return NULL;
    }
    return env;
malformed:
    PyBuffer_Release(&view);
    Py_DECREF(env);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(env);
    return NULL;
}

/* -- the module --------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"accept_read", accept_read, METH_O, accept_read_doc},
    {"uwsgi_environ", uwsgi_environ, METH_VARARGS, uwsgi_environ_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The Python worker's per-request hot path in C (see speedups.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

static int intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (intern(&s_script_name, "SCRIPT_NAME") || intern(&s_path_info, "PATH_INFO") ||
        intern(&s_query_string, "QUERY_STRING") || intern(&s_request_method, "REQUEST_METHOD") ||
        intern(&s_server_protocol, "SERVER_PROTOCOL") || intern(&s_https, "HTTPS") ||
        intern(&s_request_scheme, "REQUEST_SCHEME") || intern(&s_uwsgi_scheme, "UWSGI_SCHEME") ||
        intern(&s_url_scheme, "wsgi.url_scheme") || intern(&s_empty, "") || intern(&s_get, "GET") ||
        intern(&s_http10, "HTTP/1.0") || intern(&s_http, "http") || intern(&s_https_v, "https"))
        return NULL;
    return PyModule_Create(&module);
}
