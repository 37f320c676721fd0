"""Helpers shared by the python3-libnbd test scripts."""
import errno

import nbd


def errname(e):
    """nbd.Error.errno as a name ('EINVAL'), whatever form libnbd gives it in."""
    v = e.errno
    if isinstance(v, int):
        return errno.errorcode.get(v, str(v))
    return v


def expect(name, f, *args):
    """f(*args) must fail with errno `name`."""
    try:
        f(*args)
    except nbd.Error as e:
        assert errname(e) == name, f"{f.__name__}{args[1:]}: got {errname(e)} ({e.string}), want {name}"
        return
    raise AssertionError(f"{f.__name__}{args[1:]}: no error, want {name}")


def lax(uri):
    """A handle connected to uri with libnbd's client-side checks off, so the server judges."""
    h = nbd.NBD()
    h.set_strict_mode(0)
    h.connect_uri(uri)
    return h
