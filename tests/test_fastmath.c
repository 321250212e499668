// The vectorisable exp and tanh against libm, densely over their ranges.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "model/fastmath.h"

static void test_fast_expf_matches_libm(void **state) {
    (void)state;
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 1e-4) {
        // Compare with exp of the float input: x itself is rounded to float.
        double ref = exp((double)(float)x), got = fast_expf((float)x);
        double rel = fabs(got - ref) / ref;
        worst = rel > worst ? rel : worst;
    }
    printf("    fast_expf: worst relative error %.2e over [-87, 88]\n", worst);
    assert_true(worst < 2e-7); // the bound fastmath.h promises (a float ulp is ~1.2e-7)
    assert_true(fast_expf(0.0f) == 1.0f);
    assert_true(isfinite(fast_expf(1000.0f)) && fast_expf(1000.0f) > 1e38f);
    assert_true(fast_expf(-1000.0f) > 0.0f && fast_expf(-1000.0f) < 1e-37f);
}

static void test_fast_tanhf_matches_libm(void **state) {
    (void)state;
    double worst = 0;
    for (double x = -20.0; x <= 20.0; x += 1e-4) {
        double err = fabs(fast_tanhf((float)x) - tanh((double)(float)x));
        worst = err > worst ? err : worst;
    }
    printf("    fast_tanhf: worst absolute error %.2e over [-20, 20]\n", worst);
    assert_true(worst < 1e-6);
    assert_true(fast_tanhf(100.0f) == 1.0f && fast_tanhf(-100.0f) == -1.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_expf_matches_libm),
        cmocka_unit_test(test_fast_tanhf_matches_libm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
