/* default-handler: static files, directory indexes and listings. */
#ifndef QT_STATIC_H
#define QT_STATIC_H

#include "request.h"

int qt_static_handler(qt_request *r);

#endif
