/*
 * mod_hello: the smallest useful handler module, and the template for
 * writing one.  Load and route it with:
 *
 *     LoadModule hello_module modules/mod_hello.so
 *     <Location /hello>
 *         SetHandler hello
 *     </Location>
 *
 * GET /hello answers "Hello, world!"; /hello?name=Ada answers "Hello, Ada!".
 */
#include <string.h>

#include "module.h"
#include "request.h"

static int hello_handler(qt_request *r)
{
    if (r->method_number != QT_M_GET && r->method_number != QT_M_HEAD)
        return 405;
    const char *name = "world";
    if (r->args && strncmp(r->args, "name=", 5) == 0 && r->args[5])
        name = r->args + 5;   /* echoed as text/plain: no markup risk */
    const char *body = qt_psprintf(r->pool, "Hello, %s!\n", name);
    qt_set_content_type(r, "text/plain");
    return qt_respond(r, 200, body, strlen(body));
}

const qt_module hello_module = {
    QT_MODULE_HEADER("hello_module"),
    .handlers = (const qt_handler[]){ { "hello", hello_handler }, { NULL, NULL } },
};
