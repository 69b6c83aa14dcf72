/*
 * A compiled CGI program: CGI is a process interface, not a language.
 * Prints a greeting, the method and the query string.
 */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    printf("Content-Type: text/plain\r\n\r\n");
    printf("Hello from C\n");
    printf("method=%s\n", method ? method : "");
    printf("query=%s\n", query ? query : "");
    return 0;
}
