/*
 * A do-nothing MPM module for the configuration tests.  Built twice:
 * mod_test_mpm.so exports test_mpm_module, and with -DQT_TEST_MPM2
 * mod_test_mpm2.so exports test_mpm2_module, so a test can load two MPMs.
 * It also carries what the loader must handle for real modules: a
 * per-server directive, a per-directory directive with a merge, a handler,
 * and a post_config hook that can refuse the configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"
#include "mpm.h"

#ifdef QT_TEST_MPM2
#define TEST_MODULE test_mpm2_module
#define TEST_NAME "test_mpm2_module"
#else
#define TEST_MODULE test_mpm_module
#define TEST_NAME "test_mpm_module"
#endif

extern const qt_module TEST_MODULE;

typedef struct {
    int start_servers;
    int refuse;
} test_server_conf;

typedef struct {
    const char *value;           /* TestDirValue; NULL = unset */
} test_dir_conf;

static void *create_server(qt_pool *p)
{
    test_server_conf *c = qt_pcalloc(p, sizeof *c);

    c->start_servers = 5;
    return c;
}

static void *create_dir(qt_pool *p)
{
    return qt_pcalloc(p, sizeof(test_dir_conf));
}

static void *merge_dir(qt_pool *p, const void *base, const void *add)
{
    const test_dir_conf *b = base, *a = add;
    test_dir_conf *m = qt_pcalloc(p, sizeof *m);

    m->value = a->value ? a->value : b->value;
    return m;
}

static const char *set_start_servers(qt_cmd *cmd, int argc, char **argv)
{
    test_server_conf *c = cmd->srv_conf;
    char *end;
    long v = strtol(argv[0], &end, 10);

    if (*end || v < 1 || v > 1000)
        return "must be 1-1000";
    c->start_servers = (int)v;
    return NULL;
}

static const char *set_dir_value(qt_cmd *cmd, int argc, char **argv)
{
    test_dir_conf *d = cmd->dir_conf;

    d->value = qt_pstrdup(cmd->pool, argv[0]);
    return NULL;
}

static const char *set_refuse(qt_cmd *cmd, int argc, char **argv)
{
    test_server_conf *c = cmd->srv_conf;

    c->refuse = argv[0][0] == '1';
    return NULL;
}

static int post_config(qt_config *cfg, char *err, size_t errlen)
{
    int i = qt_config_module_index(cfg, &TEST_MODULE);
    test_server_conf *c = cfg->main->mod[i];

    if (c->refuse) {
        snprintf(err, errlen, "refused by TestRefuse");
        return QT_ERROR;
    }
    return QT_OK;
}

static int test_handler(qt_request *r)
{
    return QT_DECLINED;
}

static const qt_mpm test_mpm = { .name = "test" };

const qt_module TEST_MODULE = {
    QT_MODULE_HEADER(TEST_NAME),
    .directives = (const qt_directive[]){
        { "StartServers", QT_TAKE1, QT_CTX_MAIN, set_start_servers, "number of children" },
        { "TestDirValue", QT_TAKE1, QT_CTX_ANY, set_dir_value, "any word" },
        { "TestRefuse", QT_FLAG, QT_CTX_MAIN, set_refuse, "On|Off" },
        { 0 },
    },
    .handlers = (const qt_handler[]){ { "test-handler", test_handler }, { 0 } },
    .create_server_conf = create_server,
    .create_dir_conf = create_dir,
    .merge_dir_conf = merge_dir,
    .post_config = post_config,
    .mpm = &test_mpm,
};
