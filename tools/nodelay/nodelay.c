/* LD_PRELOAD shim for pcscd: turn on TCP_NODELAY for every socket it accepts.
 * Debian's vpcd 0.8 sends the frame length and the APDU in two writes with Nagle on, so each
 * APDU waits ~44 ms for the card's delayed ACK; with NODELAY the second write leaves at once. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static void set_nodelay(int fd) {
    if (fd < 0) return;
    /* Only TCP sockets: pcscd also accepts on its Unix socket, where the option fails harmlessly. */
    int domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return;
    if (domain != AF_INET && domain != AF_INET6) return;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen) {
    static accept_fn real;
    if (!real) real = (accept_fn)dlsym(RTLD_NEXT, "accept");
    int fd = real(sockfd, addr, addrlen);
    set_nodelay(fd);
    return fd;
}

int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags) {
    static accept4_fn real;
    if (!real) real = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    int fd = real(sockfd, addr, addrlen, flags);
    set_nodelay(fd);
    return fd;
}
