/*
 * config.c - token configuration: RACENTRE_SOFTTOKEN_DIR (default $HOME/.racentre/softtoken)
 * and the optional "key = value" file softtoken.conf in that directory
 * (slots, pbkdf2_iterations, max_pin_failures).  Read once, at C_Initialize.
 */
#include "st.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int st_config_load(st_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->slots = 2;
    cfg->pbkdf2_iterations = 200000;
    cfg->max_pin_failures = 10;

    const char *dir = getenv("RACENTRE_SOFTTOKEN_DIR");
    if (dir && *dir) {
        if (strlen(dir) >= sizeof(cfg->dir) - 64)
            return -1;
        strcpy(cfg->dir, dir);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            home = "/tmp";
        if (strlen(home) >= sizeof(cfg->dir) - 64)
            return -1;
        snprintf(cfg->dir, sizeof(cfg->dir), "%s/.racentre/softtoken", home);
    }

    char path[4200];
    snprintf(path, sizeof(path), "%s/softtoken.conf", cfg->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        char *k = trim(line), *v = trim(eq + 1);
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*v == 0 || *end != 0) {
            st_log("softtoken.conf: bad value for %s ignored", k);
            continue;
        }
        if (!strcmp(k, "slots")) {
            if (n >= 1 && n <= ST_MAX_SLOTS)
                cfg->slots = (unsigned)n;
        } else if (!strcmp(k, "pbkdf2_iterations")) {
            if (n >= 1 && n <= 100000000UL)
                cfg->pbkdf2_iterations = (unsigned)n;
        } else if (!strcmp(k, "max_pin_failures")) {
            if (n >= 1 && n <= 1000)
                cfg->max_pin_failures = (unsigned)n;
        } else {
            st_log("softtoken.conf: unknown key %s ignored", k);
        }
    }
    fclose(f);
    return 0;
}
