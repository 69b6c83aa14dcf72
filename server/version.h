#ifndef QT_VERSION_H
#define QT_VERSION_H

#define QT_SERVER_BASEPRODUCT "Quintet"
#define QT_SERVER_VERSION "0.1.0"
#define QT_SERVER_MAJOR "0"
#define QT_SERVER_MINOR "0.1"

#endif
