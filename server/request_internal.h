/* Request life cycle, between conn.c and request.c/response.c only. */
#ifndef QT_REQUEST_INTERNAL_H
#define QT_REQUEST_INTERNAL_H

#include "request.h"

/* A request for the head h (head_len bytes at the start of c->in). */
qt_request *qt_request_new(qt_conn *c, qt_pool *p, qt_http_request *h, size_t head_len);
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
