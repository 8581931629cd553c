/*
 * test_strlist.c - the list of owned strings (strlist.c): copies kept,
 * growth past the first block, byte-order sort, search of a sorted list,
 * and an empty list after free.
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <stdio.h>
#include <string.h>

#include "strlist.h"
#include "testutil.h"

int main(int argc, char **argv)
{
	struct strlist l = { 0 };
	char name[32];

	(void)argc;
	tu_init(argv[0]);
	TU_TEST("copies, growth, sort and search");
	CHECK(!strlist_has(&l, "a"));
	for (int i = 99; i >= 0; i--) {
		snprintf(name, sizeof(name), "n%03d", i);
		CHECK_EQ(strlist_add(&l, name), 0);
	}
	snprintf(name, sizeof(name), "changed"); /* the list kept its own copy */
	CHECK_EQ(l.n, 100);
	strlist_sort(&l);
	CHECK(!strcmp(l.v[0], "n000") && !strcmp(l.v[99], "n099"));
	CHECK(strlist_has(&l, "n042"));
	CHECK(!strlist_has(&l, "n100") && !strlist_has(&l, ""));
	CHECK_EQ(strlist_add(&l, "\xc3\xa9"), 0); /* byte order: after ASCII */
	strlist_sort(&l);
	CHECK(!strcmp(l.v[100], "\xc3\xa9"));
	strlist_free(&l);
	CHECK(l.n == 0 && l.v == NULL);
	strlist_free(&l); /* twice: nothing */
	return tu_finish();
}
