/*
 * Unit tests for server/conf_tree.c: httpd.conf syntax rows (each row is a
 * text and the tree it must give, printed in a compact form, or the exact
 * error), argument splitting rows and ${VAR} expansion rows.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_tree.h"

/* Prints a tree as "Name[args]" siblings, "<Sec[args]>{...}" sections, "@line". */
static void dump(const qt_conf_node *n, char *out, size_t cap)
{
    for (; n; n = n->next) {
        size_t len = strlen(out);
        if (n->is_section) {
            snprintf(out + len, cap - len, "<%s[%s]@%u>{", n->name, n->args, n->line);
            dump(n->children, out, cap);
            len = strlen(out);
            snprintf(out + len, cap - len, "}");
        } else {
            snprintf(out + len, cap - len, "%s[%s]@%u;", n->name, n->args, n->line);
        }
    }
}

typedef struct {
    const char *name;
    const char *text;
    const char *tree;           /* expected dump, or NULL if an error */
    const char *err;            /* expected error ("" for empty input) */
} syntax_row;

static const syntax_row syntax_rows[] = {
    { "one directive", "Listen 80\n", "Listen[80]@1;", NULL },
    { "no final newline", "Listen 80", "Listen[80]@1;", NULL },
    { "blanks trimmed", "   Listen \t 80  \t\n", "Listen[80]@1;", NULL },
    { "no args", "KeepAlive\n", "KeepAlive[]@1;", NULL },
    { "CRLF line ends", "A 1\r\nB 2\r\n", "A[1]@1;B[2]@2;", NULL },
    { "comment line", "# hi\nA 1\n  # indented\n", "A[1]@2;", NULL },
    { "hash after directive is an argument", "A 1 # no comment\n",
      "A[1 # no comment]@1;", NULL },
    { "continuation joins lines", "A 1 \\\n  2\nB\n", "A[1   2]@1;B[]@3;", NULL },
    { "continuation with CRLF", "A 1\\\r\n2\r\n", "A[12]@1;", NULL },
    { "continuation at end of file", "A 1\\\n", "A[1]@1;", NULL },
    { "backslash not at end stays", "A a\\b\n", "A[a\\b]@1;", NULL },
    { "section", "<Directory /x>\n Options None\n</Directory>\n",
      "<Directory[/x]@1>{Options[None]@2;}", NULL },
    { "section close case-insensitive", "<directory /x>\n</DIRECTORY>\n",
      "<directory[/x]@1>{}", NULL },
    { "section args with quotes kept raw", "<Files \".ht*\">\n</Files>\n",
      "<Files[\".ht*\"]@1>{}", NULL },
    { "section without args", "<IfModule>\n</IfModule>\n", "<IfModule[]@1>{}", NULL },
    { "nested sections", "<VirtualHost *:80>\n<Directory /a>\nX\n</Directory>\n"
      "Y\n</VirtualHost>\nZ\n",
      "<VirtualHost[*:80]@1>{<Directory[/a]@2>{X[]@3;}Y[]@5;}Z[]@7;", NULL },
    { "blank lines only", "\n\n   \n", NULL, "" },
    { "empty text", "", NULL, "" },
    { "unclosed section", "A\n<Directory /x>\nB\n", NULL,
      "f.conf:2: <Directory> was not closed" },
    { "inner unclosed", "<VirtualHost *>\n<Location />\n</VirtualHost>\n", NULL,
      "f.conf:3: </VirtualHost> without matching <VirtualHost> section (expected "
      "</Location> to close the section opened at line 2)" },
    { "close without open", "A\n</Directory>\n", NULL,
      "f.conf:2: </Directory> without matching <Directory> section" },
    { "mismatched close", "<Directory /x>\n</Location>\n", NULL,
      "f.conf:2: </Location> without matching <Location> section (expected "
      "</Directory> to close the section opened at line 1)" },
    { "open missing >", "<Directory /x\n</Directory>\n", NULL,
      "f.conf:1: <Directory> directive missing closing '>'" },
    { "close missing >", "<Directory /x>\n</Directory\n", NULL,
      "f.conf:2: </Directory directive missing closing '>'" },
    { "lone <", "<\n", NULL, "f.conf:1: '<' must be followed by a section name" },
    { "<> empty name", "<>\n", NULL, "f.conf:1: '<' must be followed by a section name" },
    { "error line counts continuations", "A \\\n\\\nb\n</X>\n", NULL,
      "f.conf:4: </X> without matching <X> section" },
};

START_TEST(test_syntax)
{
    const syntax_row *row = &syntax_rows[_i];
    qt_pool *p = qt_pool_create(4096);
    char err[512] = "x", tree[2048] = "";
    qt_conf_node *n = qt_conf_parse_text(p, "f.conf", row->text, strlen(row->text),
                                         err, sizeof err);

    if (row->tree) {
        ck_assert_msg(n != NULL, "%s: unexpected error %s", row->name, err);
        dump(n, tree, sizeof tree);
        ck_assert_msg(strcmp(tree, row->tree) == 0, "%s: got %s", row->name, tree);
        ck_assert_str_eq(n->file, "f.conf");
    } else {
        ck_assert_msg(n == NULL, "%s: expected an error", row->name);
        ck_assert_msg(strcmp(err, row->err) == 0, "%s: error '%s'", row->name, err);
    }
    qt_pool_destroy(p);
}
END_TEST

/* A hostile file: deep nesting is refused, not a stack overflow. */
START_TEST(test_deep_nesting)
{
    qt_pool *p = qt_pool_create(4096);
    char *text = malloc(100 * 20 + 1), err[256];

    text[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(text, "<IfDefine X>\n");
    ck_assert_ptr_null(qt_conf_parse_text(p, "deep", text, strlen(text), err, sizeof err));
    ck_assert_str_eq(err, "deep:65: sections nested more than 64 deep");
    free(text);
    qt_pool_destroy(p);
}
END_TEST

/* A 1 MiB logical line built from continuations parses in one piece. */
START_TEST(test_huge_line)
{
    qt_pool *p = qt_pool_create(4096);
    size_t n = 1 << 20;
    char *text = malloc(n + 16), err[256];
    qt_conf_node *node;

    memcpy(text, "A ", 2);
    for (size_t i = 2; i < n; i++)
        text[i] = (i % 100 == 0) ? '\\' : 'x';
    for (size_t i = 100; i < n; i += 100)
        text[i + 1] = '\n';
    text[n] = '\0';
    node = qt_conf_parse_text(p, "big", text, n, err, sizeof err);
    ck_assert_ptr_nonnull(node);
    ck_assert_ptr_null(node->next);
    ck_assert_str_eq(node->name, "A");
    ck_assert_uint_gt(strlen(node->args), n / 2);
    free(text);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_parse_file)
{
    qt_pool *p = qt_pool_create(4096);
    char path[] = "/tmp/qt-conftree-XXXXXX", err[512];
    int fd = mkstemp(path);
    qt_conf_node *n;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "\nListen 8080\n", 13), 13);
    close(fd);
    n = qt_conf_parse_file(p, path, err, sizeof err);
    ck_assert_ptr_nonnull(n);
    ck_assert_str_eq(n->file, path);
    ck_assert_uint_eq(n->line, 2);
    unlink(path);
    ck_assert_ptr_null(qt_conf_parse_file(p, path, err, sizeof err));
    ck_assert_msg(strstr(err, "No such file or directory") && strncmp(err, path, strlen(path)) == 0,
                  "got %s", err);
    qt_pool_destroy(p);
}
END_TEST

typedef struct {
    const char *args;
    int argc;                   /* -1: error */
    const char *words[5];
} split_row;

static const split_row split_rows[] = {
    { "", 0, { NULL } },
    { "   \t ", 0, { NULL } },
    { "a", 1, { "a" } },
    { " a  b\tc ", 3, { "a", "b", "c" } },
    { "\"a b\" c", 2, { "a b", "c" } },
    { "'a b' \"\"", 2, { "a b", "" } },
    { "\"say \\\"hi\\\"\"", 1, { "say \"hi\"" } },
    { "'it\\'s'", 1, { "it's" } },
    { "\"a\\\\b\"", 1, { "a\\b" } },
    { "\"a\\nb\"", 1, { "a\\nb" } },               /* other escapes stay */
    { "\"it's\"", 1, { "it's" } },                 /* other quote is literal */
    { "a\"b c\"", 2, { "a\"b", "c\"" } },           /* quotes only open a word */
    { "\"x\"y", 2, { "x", "y" } },
    { "%h \"%r\" %>s", 3, { "%h", "%r", "%>s" } },
    { "\"unterminated", -1, { NULL } },
    { "ok 'bad", -1, { NULL } },
    { "\"ends in backslash\\\"", -1, { NULL } },
};

START_TEST(test_split)
{
    const split_row *row = &split_rows[_i];
    qt_pool *p = qt_pool_create(1024);
    char **argv = NULL, err[256] = "";
    int argc = qt_conf_split_args(p, row->args, &argv, err, sizeof err);

    ck_assert_msg(argc == row->argc, "'%s': argc %d", row->args, argc);
    if (argc < 0) {
        ck_assert(strstr(err, "unterminated") != NULL);
    } else {
        for (int i = 0; i < argc; i++)
            ck_assert_str_eq(argv[i], row->words[i]);
        ck_assert_ptr_null(argv[argc]);
    }
    qt_pool_destroy(p);
}
END_TEST

static const char *lookup(void *ctx, const char *name)
{
    if (strcmp(name, "ROOT") == 0)
        return "/srv";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    if (strcmp(name, "SELF") == 0)
        return "${SELF}";
    return NULL;
}

static void warn(void *ctx, const char *name)
{
    char *seen = ctx;

    strcat(seen, name);
    strcat(seen, ",");
}

typedef struct {
    const char *in, *out, *warned;
} expand_row;

static const expand_row expand_rows[] = {
    { "plain", "plain", "" },
    { "${ROOT}/htdocs", "/srv/htdocs", "" },
    { "a${EMPTY}b", "ab", "" },
    { "${ROOT}${ROOT}", "/srv/srv", "" },
    { "${NOPE}/x", "${NOPE}/x", "NOPE," },
    { "${ROOT} ${NOPE} ${NOPE2}", "/srv ${NOPE} ${NOPE2}", "NOPE,NOPE2," },
    { "${SELF}", "${SELF}", "" },                   /* values are not re-expanded */
    { "${unterminated", "${unterminated", "" },
    { "${}", "${}", "" },
    { "${a:b}", "${a:b}", "" },                     /* ':' names belong to others */
    { "$ROOT {ROOT} $", "$ROOT {ROOT} $", "" },
};

START_TEST(test_expand)
{
    const expand_row *row = &expand_rows[_i];
    qt_pool *p = qt_pool_create(1024);
    char seen[128] = "";

    ck_assert_str_eq(qt_conf_expand_vars(p, row->in, lookup, warn, seen), row->out);
    ck_assert_str_eq(seen, row->warned);
    ck_assert_str_eq(qt_conf_expand_vars(p, row->in, lookup, NULL, NULL), row->out);
    qt_pool_destroy(p);
}
END_TEST

#define NROWS(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *conf_tree_suite(void)
{
    Suite *s = suite_create("conf_tree");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_syntax, 0, NROWS(syntax_rows));
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_huge_line);
    tcase_add_test(tc, test_parse_file);
    tcase_add_loop_test(tc, test_split, 0, NROWS(split_rows));
    tcase_add_loop_test(tc, test_expand, 0, NROWS(expand_rows));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_tree_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
