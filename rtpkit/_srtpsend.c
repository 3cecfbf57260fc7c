/* One RTP packet out in one call: header, SRTP protection and the socket's sendto, in C.
 *
 * rtpkit.outlet.Outlet does this in Python: pack the header, join it to the payload, copy the
 * packet into pylibsrtp's buffer, call srtp_protect through cffi, copy the result out as new
 * bytes and hand them to uvloop's sendto, which converts the address again. Per forwarded
 * packet an SFU does that two or three times. Here a Sender writes the header and payload
 * straight into its own buffer, protects it in place with the session's srtp_protect (the
 * function and session pointers come from pylibsrtp's cffi binding, so the same libsrtp and
 * the same session state are used), and sends it on the ICE socket's descriptor to an address
 * converted once. Nothing is allocated for a packet that goes out.
 *
 * Anything the socket does not take at once (a full send buffer, any error) comes back as the
 * protected bytes, for the caller to hand to the transport, which queues them or reports the
 * error its own way. The Python fallback (rtpkit.outlet) stays the reference; the tests run
 * both on the same packets.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*srtp_fn)(void *ctx, void *buf, int *len);

typedef struct {
    PyObject_HEAD
    srtp_fn protect;
    void *ctx;
    PyObject *keepalive; /* what owns the libsrtp session */
    unsigned char *buf;
    Py_ssize_t room; /* the largest plain packet */
    Py_ssize_t capacity; /* room + the SRTP trailer */
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
} Sender;

static int
Sender_init(Sender *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"protect", "session", "keepalive", "room", "trailer", NULL};
    unsigned long long protect, session;
    PyObject *keepalive;
    Py_ssize_t room, trailer;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKOnn", kwlist, &protect, &session,
                                     &keepalive, &room, &trailer))
        return -1;
    if (!protect || !session) {
        PyErr_SetString(PyExc_ValueError, "null srtp_protect or session pointer");
        return -1;
    }
    if (room < 12 || trailer < 0 || room > (1 << 20) || trailer > 4096) {
        PyErr_SetString(PyExc_ValueError, "room or trailer out of range");
        return -1;
    }
    unsigned char *buf = PyMem_Malloc((size_t)(room + trailer));
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(self->buf);
    self->buf = buf;
    self->protect = (srtp_fn)(uintptr_t)protect;
    self->ctx = (void *)(uintptr_t)session;
    Py_INCREF(keepalive);
    Py_XSETREF(self->keepalive, keepalive);
    self->room = room;
    self->capacity = room + trailer;
    self->fd = -1;
    self->addrlen = 0;
    return 0;
}

static void
Sender_dealloc(Sender *self)
{
    PyMem_Free(self->buf);
    Py_XDECREF(self->keepalive);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Where packets go: the descriptor and a numeric address; False if it is not one. */
static PyObject *
Sender_connect(Sender *self, PyObject *args)
{
    int fd, port;
    const char *host;
    if (!PyArg_ParseTuple(args, "isi", &fd, &host, &port))
        return NULL;
    self->fd = -1;
    self->addrlen = 0;
    if (fd < 0 || port <= 0 || port > 65535)
        Py_RETURN_FALSE;
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_DGRAM;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &found) != 0 || found == NULL)
        Py_RETURN_FALSE;
    if (found->ai_addrlen > sizeof self->addr) {
        freeaddrinfo(found);
        Py_RETURN_FALSE;
    }
    memcpy(&self->addr, found->ai_addr, found->ai_addrlen);
    self->addrlen = (socklen_t)found->ai_addrlen;
    freeaddrinfo(found);
    self->fd = fd;
    Py_RETURN_TRUE;
}

static PyObject *
Sender_disconnect(Sender *self, PyObject *Py_UNUSED(ignored))
{
    self->fd = -1;
    self->addrlen = 0;
    Py_RETURN_NONE;
}

/* Header + ext + payload into buf, protected in place; the protected length, 0 if dropped. */
static int
build_and_protect(Sender *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "expected (payload_type, marker, seq, timestamp, ssrc, ext, payload)");
        return -1;
    }
    long pt = PyLong_AsLong(args[0]);
    int marker = PyObject_IsTrue(args[1]);
    long seq = PyLong_AsLong(args[2]);
    unsigned long ts = PyLong_AsUnsignedLong(args[3]);
    unsigned long ssrc = PyLong_AsUnsignedLong(args[4]);
    if (PyErr_Occurred() || marker < 0)
        return -1;
    if (pt < 0 || pt > 127 || seq < 0 || seq > 0xFFFF || ts > 0xFFFFFFFFUL ||
        ssrc > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "RTP header field out of range");
        return -1;
    }
    if (!PyBytes_Check(args[5]) || !PyBytes_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "ext and payload must be bytes");
        return -1;
    }
    if (self->buf == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Sender not initialized");
        return -1;
    }
    Py_ssize_t ext_len = PyBytes_GET_SIZE(args[5]), payload_len = PyBytes_GET_SIZE(args[6]);
    Py_ssize_t size = 12 + ext_len + payload_len;
    if (size > self->room)
        return 0; /* as the Python outlet: too long for the session's buffer, dropped */
    unsigned char *b = self->buf;
    b[0] = ext_len ? 0x90 : 0x80;
    b[1] = (unsigned char)(pt | (marker ? 0x80 : 0));
    b[2] = (unsigned char)(seq >> 8);
    b[3] = (unsigned char)seq;
    b[4] = (unsigned char)(ts >> 24);
    b[5] = (unsigned char)(ts >> 16);
    b[6] = (unsigned char)(ts >> 8);
    b[7] = (unsigned char)ts;
    b[8] = (unsigned char)(ssrc >> 24);
    b[9] = (unsigned char)(ssrc >> 16);
    b[10] = (unsigned char)(ssrc >> 8);
    b[11] = (unsigned char)ssrc;
    memcpy(b + 12, PyBytes_AS_STRING(args[5]), (size_t)ext_len);
    memcpy(b + 12 + ext_len, PyBytes_AS_STRING(args[6]), (size_t)payload_len);
    int length = (int)size;
    if (self->protect(self->ctx, b, &length) != 0)
        return 0; /* an SRTP error drops the packet, as on the Python path */
    if (length <= 0 || length > self->capacity)
        return 0;
    return length;
}

/* protect(payload_type, marker, seq, timestamp, ssrc, ext, payload) -> bytes | None */
static PyObject *
Sender_protect(Sender *self, PyObject *const *args, Py_ssize_t nargs)
{
    int length = build_and_protect(self, args, nargs);
    if (length < 0)
        return NULL;
    if (length == 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)self->buf, length);
}

/* send(...same...) -> True (sent) | False (dropped) | bytes (protected, not taken by the
 * socket: for the transport) */
static PyObject *
Sender_send(Sender *self, PyObject *const *args, Py_ssize_t nargs)
{
    int length = build_and_protect(self, args, nargs);
    if (length < 0)
        return NULL;
    if (length == 0)
        Py_RETURN_FALSE;
    if (self->fd >= 0 && self->addrlen > 0) {
        ssize_t sent = sendto(self->fd, self->buf, (size_t)length, MSG_DONTWAIT,
                              (struct sockaddr *)&self->addr, self->addrlen);
        if (sent == length)
            Py_RETURN_TRUE;
    }
    return PyBytes_FromStringAndSize((const char *)self->buf, length);
}

static PyObject *
Sender_get_connected(Sender *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->fd >= 0 && self->addrlen > 0);
}

static PyMethodDef Sender_methods[] = {
    {"connect", (PyCFunction)Sender_connect, METH_VARARGS,
     "connect(fd, host, port) -> bool: send to this numeric address on this descriptor"},
    {"disconnect", (PyCFunction)Sender_disconnect, METH_NOARGS,
     "disconnect(): send() hands every packet back"},
    {"protect", (PyCFunction)(void (*)(void))Sender_protect, METH_FASTCALL,
     "protect(payload_type, marker, seq, timestamp, ssrc, ext, payload) -> bytes | None"},
    {"send", (PyCFunction)(void (*)(void))Sender_send, METH_FASTCALL,
     "send(payload_type, marker, seq, timestamp, ssrc, ext, payload) -> bool | bytes"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Sender_getset[] = {
    {"connected", (getter)Sender_get_connected, NULL, "whether send() uses the socket", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rtpkit._srtpsend.Sender",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Header, SRTP protection and sendto for one transport's RTP packets.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_methods = Sender_methods,
    .tp_getset = Sender_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rtpkit._srtpsend",
    .m_doc = "One RTP packet out in one call: header, SRTP protection and sendto.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__srtpsend(void)
{
    if (PyType_Ready(&SenderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SenderType);
    if (PyModule_AddObject(m, "Sender", (PyObject *)&SenderType) < 0) {
        Py_DECREF(&SenderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
