/* Request life cycle, between conn.c and request.c/response.c only. */
#ifndef QT_REQUEST_INTERNAL_H
#define QT_REQUEST_INTERNAL_H

#include "request.h"

/* A zeroed request (but for r->http.headers) ready for the parser. */
qt_request *qt_request_alloc(qt_conn *c, qt_pool *p);
/* Sets the request up from r->http, parsed from head_len bytes of c->in. */
void qt_request_start(qt_request *r, size_t head_len);
/* A request with no usable head, to answer an early error (400, 414, 408). */
qt_request *qt_request_new_bare(qt_conn *c, qt_pool *p, const qt_server *s);
/* Routes and runs the handler; every outcome ends in a response. */
void qt_request_process(qt_request *r);
/* Completes the response framing and settles keep-alive. */
void qt_request_finish(qt_request *r);

/* Response internals shared by request.c and response.c. */
void qt_response_init(qt_request *r);
int qt_error_page(qt_request *r, int status);

#endif
